"""Shopify's calculated query cost and its leaky bucket.

A field returning a scalar or an enum costs 0, an object 1, a connection 2 plus the number of
objects it asks for (``first`` or ``last``) times each object's cost, a mutation 10. The
requested cost is counted before running, the actual one from what came back; the bucket is
charged the requested cost and refunded the difference (RULES.md: cost-*, throttle-*).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

MUTATION_COST = 10
MAX_QUERY_COST = 1000
"""The single-query limit: a query whose requested cost is above it is refused whatever the
bucket holds."""


@dataclass(frozen=True)
class Plan:
    """A plan's bucket: ``maximum`` points, restored at ``restore_rate`` points a second."""

    maximum: float = 2000.0
    restore_rate: float = 100.0


STANDARD = Plan()


@dataclass
class Bucket:
    """The app-and-store bucket; ``clock`` (seconds, monotonic) is injectable so a test can let
    time pass without sleeping."""

    plan: Plan = STANDARD
    clock: Callable[[], float] = time.monotonic
    available: float = field(init=False)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self.available = self.plan.maximum
        self._at = self.clock()

    def refill(self) -> float:
        now = self.clock()
        self.available = min(self.plan.maximum, self.available + (now - self._at) * self.plan.restore_rate)
        self._at = now
        return self.available

    def take(self, cost: int) -> bool:
        """Charge ``cost`` if the bucket holds it (False: throttled, nothing charged)."""
        if cost > self.refill():
            return False
        self.available -= cost
        return True

    def refund(self, points: int) -> None:
        self.available = min(self.plan.maximum, self.available + points)

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.plan.maximum,
            "currentlyAvailable": round(self.refill(), 1),
            "restoreRate": self.plan.restore_rate,
        }


class Coster:
    """Counts one operation's cost against the schema (requested: from the arguments; actual:
    from the answer's data)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]):
        self.schema = schema
        self.variables = dict(variables)
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def operation(self, op: OperationDefinitionNode, data: Any = None, actual: bool = False) -> int:
        if op.operation == OperationType.MUTATION:
            return MUTATION_COST * len(self._fields(op.selection_set))
        root = self.schema.query_type
        assert root is not None
        return self._selection(op.selection_set, root, data, actual)

    def _fields(self, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        found: list[FieldNode] = []
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                found.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                found.extend(self._fields(sel.selection_set))
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                found.extend(self._fields(self.fragments[sel.name.value].selection_set))
        return found

    def _size(self, node: FieldNode) -> int:
        for arg in node.arguments or ():
            if arg.name.value in ("first", "last"):
                value = value_from_ast_untyped(arg.value, self.variables)
                return int(value) if isinstance(value, int) else 0
        return 0

    def _selection(self, selection_set: SelectionSetNode | None, parent: Any, data: Any, actual: bool) -> int:
        if isinstance(parent, GraphQLInterfaceType | GraphQLUnionType):  # the costliest member
            members = (
                parent.types
                if isinstance(parent, GraphQLUnionType)
                else self.schema.get_implementations(parent).objects
            )
            return max((self._selection(selection_set, t, data, actual) for t in members), default=0)
        if not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for node in self._fields(selection_set):
            definition = parent.fields.get(node.name.value)
            if definition is None:
                continue
            target = get_named_type(definition.type)
            if is_leaf_type(target):
                continue
            key = node.alias.value if node.alias else node.name.value
            value = data.get(key) if isinstance(data, dict) else None
            if target.name.endswith("Connection"):
                total += 2 + self._connection(node, target, value, actual)
            elif isinstance(value, list) and actual:
                total += sum(1 + self._selection(node.selection_set, target, v, actual) for v in value)
            else:
                total += 1 + self._selection(node.selection_set, target, value, actual)
        return total

    def _connection(self, node: FieldNode, connection: Any, value: Any, actual: bool) -> int:
        element = get_named_type(connection.fields["nodes"].type)
        inner: list[tuple[SelectionSetNode | None, str]] = []
        for part in self._fields(node.selection_set):
            if part.name.value == "nodes":
                inner.append((part.selection_set, "nodes"))
            elif part.name.value == "edges":
                for edge_part in self._fields(part.selection_set):
                    if edge_part.name.value == "node":
                        inner.append((edge_part.selection_set, "edges"))
        if not actual:
            each = max((self._selection(s, element, None, False) for s, _ in inner), default=0)
            return self._size(node) * (1 + each)
        total = 0
        for selection, how in inner:
            items = (value or {}).get(how) or [] if isinstance(value, dict) else []
            for item in items:
                target = item.get("node") if how == "edges" and isinstance(item, dict) else item
                total += 1 + self._selection(selection, element, target, True)
        return total
