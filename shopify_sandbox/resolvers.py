"""How the served schema answers: connections page over the shop's records (or a record's
list), lookups by gid, and the bulk-operation queries and mutations.

Resolvers are attached once to the cached schema of each version and find the sandbox through
``info.context`` (a :class:`Context`), so one schema serves any number of sandboxes.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    get_named_type,
)

from shopify_sandbox import bulk_rules
from shopify_sandbox.convert import JSON
from shopify_sandbox.operations import Operation, Operations, concurrency_limit
from shopify_sandbox.shop import KINDS, ShopData

MAX_PAGE = 250


@dataclass
class Context:
    shop: ShopData
    operations: Operations
    version: str
    schema: GraphQLSchema
    advanced: set[int]
    """Operations already moved on by this request (one step per request, however many fields
    read them)."""


Info = GraphQLResolveInfo[Context]


def _cursor(index: int) -> str:
    return base64.b64encode(f"cursor:{index}".encode()).decode()


def _index(cursor: str | None) -> int:
    if cursor is None:
        return -1
    try:
        return int(base64.b64decode(cursor).decode().removeprefix("cursor:"))
    except ValueError:
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor}") from None


def page(items: Iterable[JSON], args: dict[str, Any]) -> JSON:
    """One page of a connection, as Shopify's cursor pagination gives it."""
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for value in (first, last):
        if value is not None and not 0 <= value <= MAX_PAGE:
            raise GraphQLError(f"The maximum number of items that can be requested is {MAX_PAGE}.")
    after, before = _index(args.get("after")), args.get("before")
    if args.get("reverse"):
        items = list(items)[::-1]
    indexed = itertools.islice(enumerate(items), after + 1, _index(before) if before else None)
    if first is not None:
        chosen = list(itertools.islice(indexed, first + 1))
        more_after, chosen = len(chosen) > first, chosen[:first]
        more_before = after >= 0
    else:
        everything = list(indexed)
        chosen = everything[-last:] if last else []
        more_before, more_after = len(everything) > len(chosen), before is not None
    edges = [{"cursor": _cursor(i), "node": node} for i, node in chosen]
    return {
        "edges": edges,
        "nodes": [e["node"] for e in edges],
        "pageInfo": {
            "hasNextPage": more_after,
            "hasPreviousPage": more_before,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _root_connection(kind: str) -> Any:
    def resolve(_: Any, info: Info, **args: Any) -> JSON:
        context: Context = info.context
        if kind == "bulkOperations":
            return page([op.as_node() for op in reversed(context.operations.all)], args)
        return page(context.shop.nodes(kind), args)  # type: ignore[arg-type]

    return resolve


def _nested_connection(parent: Any, info: Info, **args: Any) -> JSON:
    return page(parent.get(info.field_name) or [], args)


async def _seen(context: Context, op: Operation | None) -> JSON | None:
    if op is None:
        return None
    if op.number not in context.advanced:
        context.advanced.add(op.number)
        await context.operations.advance(op, context.schema)
    return op.as_node()


async def _find(_: Any, info: Info, id: str) -> JSON | None:
    context: Context = info.context
    if id.startswith("gid://shopify/BulkOperation/"):
        return await _seen(context, context.operations.get(id))
    return context.shop.find(id)


async def _nodes(_: Any, info: Info, ids: list[str]) -> list[JSON | None]:
    return [await _find(_, info, one) for one in ids]


async def _current(_: Any, info: Info, type: str = "QUERY") -> JSON | None:
    context: Context = info.context
    return await _seen(context, context.operations.current() if type == "QUERY" else None)


def _run_query(_: Any, info: Info, query: str, groupObjects: bool = False) -> JSON:  # noqa: N803
    context: Context = info.context
    try:
        bulk = bulk_rules.check(query, context.schema)
    except bulk_rules.BulkQueryError as refused:
        return {
            "bulkOperation": None,
            "userErrors": [{"code": "INVALID", "field": ["query"], "message": str(refused)}],
        }
    limit = concurrency_limit(context.version)
    if len(context.operations.running()) >= limit:
        if limit == 1:
            message = "A bulk query operation for this app and shop is already in progress: "
            message += context.operations.running()[0].id
            error = {"code": "OPERATION_IN_PROGRESS", "field": None, "message": message}
        else:
            message = f"Bulk operations limit reached: at most {limit} bulk query operations run at once."
            error = {"code": "LIMIT_REACHED", "field": None, "message": message}
        return {"bulkOperation": None, "userErrors": [error]}
    return {"bulkOperation": context.operations.start(query, bulk).as_node(), "userErrors": []}


def _cancel(_: Any, info: Info, id: str) -> JSON:
    context: Context = info.context
    op = context.operations.get(id)
    if op is None:
        return {
            "bulkOperation": None,
            "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
        }
    reason = context.operations.cancel(op)
    errors = [{"field": None, "message": reason}] if reason else []
    return {"bulkOperation": op.as_node(), "userErrors": errors}


def _type_of(value: Any, *_: Any) -> str:
    return str(value["id"]).removeprefix("gid://shopify/").partition("/")[0]


def wire(schema: GraphQLSchema) -> GraphQLSchema:
    """Attach the resolvers (once per schema object)."""
    if getattr(schema, "_sandbox_wired", False):
        return schema
    root = schema.query_type
    mutation = schema.mutation_type
    assert root is not None and mutation is not None
    for name in (*KINDS, "bulkOperations"):
        if name in root.fields:
            root.fields[name].resolve = _root_connection(name)
    for name in ("customer", "order", "product", "node", "bulkOperation"):
        if name in root.fields:
            root.fields[name].resolve = _find
    root.fields["nodes"].resolve = _nodes
    root.fields["currentBulkOperation"].resolve = _current
    mutation.fields["bulkOperationRunQuery"].resolve = _run_query
    mutation.fields["bulkOperationCancel"].resolve = _cancel
    for named in schema.type_map.values():
        if isinstance(named, GraphQLInterfaceType):
            named.resolve_type = _type_of
        if not isinstance(named, GraphQLObjectType) or named in (root, mutation):
            continue
        for definition in named.fields.values():
            if get_named_type(definition.type).name.endswith("Connection"):
                definition.resolve = _nested_connection
    schema._sandbox_wired = True  # type: ignore[attr-defined]
    return schema
