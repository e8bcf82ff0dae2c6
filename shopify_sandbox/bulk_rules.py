"""What ``bulkOperationRunQuery`` refuses before it runs: a query that does not parse or
validate, a mutation, more than one top-level field, a top-level ``node``/``nodes``, no
connection, more than five connections, connections nested more than two levels deep
(RULES.md: bulk-*). Each refusal is a ``BulkOperationUserError`` with code INVALID.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    validate,
)

from shopify_sandbox.errors import shopify_message

MAX_CONNECTIONS = 5
MAX_DEPTH = 2


@dataclass(frozen=True)
class BulkQuery:
    """A bulk query that passed: its document and its one top-level field."""

    document: DocumentNode
    root: FieldNode


class BulkQueryError(Exception):
    """The query is refused; ``message`` is the userError's message."""


def _fields(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> list[FieldNode]:
    found: list[FieldNode] = []
    for sel in selection_set.selections if selection_set else ():
        if isinstance(sel, FieldNode):
            found.append(sel)
        elif isinstance(sel, InlineFragmentNode):
            found.extend(_fields(sel.selection_set, fragments))
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
            found.extend(_fields(fragments[sel.name.value].selection_set, fragments))
    return found


def _connections(
    node: FieldNode, parent: GraphQLObjectType, fragments: dict[str, FragmentDefinitionNode], depth: int
) -> tuple[int, int]:
    """(connections at or under ``node``, deepest connection nesting) for one field."""
    definition = parent.fields.get(node.name.value)
    if definition is None:
        return 0, 0
    target = get_named_type(definition.type)
    if not isinstance(target, GraphQLObjectType):
        return 0, 0
    here = 1 if target.name.endswith("Connection") else 0
    count, deepest = here, depth + here
    for child in _fields(node.selection_set, fragments):
        inner_count, inner_depth = _connections(child, target, fragments, depth + here)
        count += inner_count
        deepest = max(deepest, inner_depth)
    return count, deepest


def check(text: str, schema: GraphQLSchema) -> BulkQuery:
    """The bulk query, or BulkQueryError saying why Shopify would refuse it."""
    try:
        document = parse(text)
    except GraphQLError as error:
        raise BulkQueryError(f"Invalid bulk query: {error.message}") from None
    problems = validate(schema, document)
    if problems:
        raise BulkQueryError(f"Invalid bulk query: {shopify_message(problems[0])}")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        raise BulkQueryError("Invalid bulk query: bulkOperationRunQuery takes exactly one query operation")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    top = _fields(operations[0].selection_set, fragments)
    if any(f.name.value in ("node", "nodes") for f in top):
        raise BulkQueryError("Bulk queries cannot contain a top level `node` or `nodes` field.")
    if len(top) != 1:
        raise BulkQueryError("Bulk queries must contain exactly one top level field.")
    root_type = schema.query_type
    assert root_type is not None
    count, depth = _connections(top[0], root_type, fragments, 0)
    if count == 0:
        raise BulkQueryError("Bulk queries must contain at least one connection.")
    if count > MAX_CONNECTIONS:
        raise BulkQueryError(f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections.")
    if depth > MAX_DEPTH:
        raise BulkQueryError(
            f"Bulk queries cannot contain connections nested more than {MAX_DEPTH} levels deep."
        )
    return BulkQuery(document, top[0])
