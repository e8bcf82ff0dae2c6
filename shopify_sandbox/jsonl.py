"""A bulk query's result as Shopify writes it: JSON Lines, one object a line. Connections are
not nested in their parent's line: each node of a connection is its own line, after its
parent's, carrying ``__parentId`` (the parent's gid). Objects that are not connections (a
customer's default address, an order's customer) stay inline.

Written to a file a root object at a time, so a 100,000-customer export never sits in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
)

from shopify_sandbox.convert import JSON


@dataclass
class Written:
    """What a writer produced: every line, the root lines, and the bytes."""

    objects: int = 0
    roots: int = 0
    size: int = 0


class Projector:
    """Turns records into bulk lines for one query's selection."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]):
        self.schema = schema
        self.fragments = fragments

    def fields(self, selection_set: SelectionSetNode | None, typename: str) -> Iterator[FieldNode]:
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                yield sel
            elif isinstance(sel, InlineFragmentNode):
                condition = sel.type_condition.name.value if sel.type_condition else typename
                if self._matches(condition, typename):
                    yield from self.fields(sel.selection_set, typename)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                fragment = self.fragments[sel.name.value]
                if self._matches(fragment.type_condition.name.value, typename):
                    yield from self.fields(fragment.selection_set, typename)

    def _matches(self, condition: str, typename: str) -> bool:
        if condition == typename:
            return True
        wanted = self.schema.get_type(condition)
        actual = self.schema.get_type(typename)
        if isinstance(wanted, GraphQLInterfaceType) and isinstance(actual, GraphQLObjectType):
            return self.schema.is_sub_type(wanted, actual)
        return False

    def lines(self, record: JSON, selection: SelectionSetNode | None, typename: str) -> Iterator[JSON]:
        """The record's line, then the lines of its connections' nodes (depth first)."""
        children: list[JSON] = []
        line = self._object(record, selection, typename, record.get("id"), children)
        yield line
        yield from children

    def _object(
        self,
        record: JSON,
        selection: SelectionSetNode | None,
        typename: str,
        owner: Any,
        children: list[JSON],
    ) -> JSON:
        kind = self.schema.get_type(typename)
        assert isinstance(kind, GraphQLObjectType)
        line: JSON = {}
        for node in self.fields(selection, typename):
            name = node.name.value
            key = node.alias.value if node.alias else name
            if name == "__typename":
                line[key] = typename
                continue
            definition = kind.fields[name]
            target = get_named_type(definition.type)
            value = record.get(name)
            if target.name.endswith("Connection"):
                self._connection(node, target, value or [], record.get("id", owner), children)
            elif isinstance(target, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
                line[key] = self._nested(value, node, definition.type, owner, children)
            else:
                line[key] = value
        return line

    def _nested(
        self, value: Any, node: FieldNode, kind: GraphQLOutputType, owner: Any, children: list[JSON]
    ) -> Any:
        if isinstance(kind, GraphQLNonNull):
            kind = kind.of_type
        if value is None:
            return None
        if isinstance(kind, GraphQLList):
            return [self._nested(v, node, kind.of_type, owner, children) for v in value]
        typename = self._typename(value, get_named_type(kind).name)
        return self._object(value, node.selection_set, typename, owner, children)

    def _typename(self, value: JSON, declared: str) -> str:
        kind = self.schema.get_type(declared)
        if isinstance(kind, GraphQLUnionType):  # a union member names itself (no gid of its own)
            return str(value["__typename"])
        if isinstance(kind, GraphQLInterfaceType):
            return str(value["id"]).removeprefix("gid://shopify/").partition("/")[0]
        return declared

    def _connection(
        self, node: FieldNode, connection: Any, items: Iterable[JSON], parent: Any, out: list[JSON]
    ) -> None:
        element = get_named_type(connection.fields["nodes"].type).name
        selections: list[SelectionSetNode | None] = []
        for part in self.fields(node.selection_set, connection.name):
            if part.name.value == "nodes":
                selections.append(part.selection_set)
            elif part.name.value == "edges":
                edge = connection.fields["edges"]
                for edge_part in self.fields(part.selection_set, get_named_type(edge.type).name):
                    if edge_part.name.value == "node":
                        selections.append(edge_part.selection_set)
        for item in items:
            for selection in selections:
                typename = self._typename(item, element)
                grandchildren: list[JSON] = []
                line = self._object(item, selection, typename, item.get("id"), grandchildren)
                line["__parentId"] = parent
                out.append(line)
                out.extend(grandchildren)


def write(
    path: Path,
    lines_of_roots: Iterable[Iterable[JSON]],
    written: Written,
    stop: Callable[[], bool] = lambda: False,
) -> Written:
    """Write each root's lines, counting into ``written`` as it goes (another thread reads the
    running totals); ends early when the iterable does (a failure part way) or ``stop()`` says so."""
    with path.open("wb") as out:
        for lines in lines_of_roots:
            if stop():
                break
            chunk = b"".join(orjson.dumps(line) + b"\n" for line in lines)
            out.write(chunk)
            written.objects += chunk.count(b"\n")
            written.roots += 1
            written.size += len(chunk)
    return written
