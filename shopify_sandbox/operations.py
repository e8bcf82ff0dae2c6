"""Bulk operations and their lifecycle: CREATED, then RUNNING, then COMPLETED (or FAILED, or
CANCELING then CANCELED), at most one step each time the operation is read, so a test decides
when time passes by polling and never sleeps. The export is written in a thread from the moment
the operation runs (``objectCount`` is its running total); a read of a RUNNING operation waits
up to ``wait_s`` for it, so a small export completes on the next poll and a large one reports
RUNNING with its progress, as Shopify's does.

``fail_next`` makes the next operation fail with a ``BulkOperationErrorCode`` after some root
objects, leaving them at ``partialDataUrl``, as Shopify does when an export breaks part way.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from graphql import FieldNode, FragmentDefinitionNode, GraphQLSchema, SelectionSetNode, get_named_type

from shopify_sandbox import jsonl
from shopify_sandbox.bulk_rules import BulkQuery
from shopify_sandbox.convert import JSON, gid
from shopify_sandbox.shop import KINDS, Kind, ShopData

ACTIVE = ("CREATED", "RUNNING", "CANCELING")


def concurrency_limit(version: str) -> int:
    """Bulk query operations an app may run at once per shop: five from 2026-01, one before."""
    return 5 if version >= "2026-01" else 1


@dataclass(frozen=True)
class Failure:
    """How the next operation fails: ``error_code`` after ``after_roots`` root objects."""

    error_code: str = "INTERNAL_SERVER_ERROR"
    after_roots: int = 0


@dataclass
class Operation:
    number: int
    query: str
    kind: Kind
    created_at: str
    bulk: BulkQuery
    failure: Failure | None = None
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: str | None = None
    written: jsonl.Written = field(default_factory=jsonl.Written)
    path: Path | None = None
    base_url: str = ""
    task: asyncio.Future[jsonl.Written] | None = None
    stopping: bool = False

    @property
    def id(self) -> str:
        return gid("BulkOperation", self.number)

    def as_node(self) -> JSON:
        done = self.status in ("COMPLETED", "FAILED")
        link = f"{self.base_url}/_sandbox/bulk/{self.number}.jsonl" if done and self.path else None
        return {
            "id": self.id, "status": self.status, "type": "QUERY", "errorCode": self.error_code,
            "createdAt": self.created_at, "completedAt": self.completed_at,
            "objectCount": str(self.written.objects), "rootObjectCount": str(self.written.roots),
            "fileSize": str(self.written.size) if link and self.written.size else None,
            "url": link if self.status == "COMPLETED" and self.written.objects else None,
            "partialDataUrl": link if self.status == "FAILED" and self.written.objects else None,
            "query": self.query,
        }  # fmt: skip


class Operations:
    """Every bulk operation of the one app on the one shop the sandbox plays."""

    def __init__(
        self, shop: ShopData, now: Callable[[], datetime], directory: Path | None = None, wait_s: float = 2.0
    ):
        self.wait_s = wait_s
        self.shop = shop
        self.now = now
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="shopify-sandbox-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.all: list[Operation] = []
        self.fail_next: Failure | None = None
        self._numbers = itertools.count(1)
        self.base_url = ""

    def _stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def running(self) -> list[Operation]:
        return [op for op in self.all if op.status in ACTIVE]

    def start(self, text: str, bulk: BulkQuery) -> Operation:
        kind = bulk.root.name.value
        assert kind in KINDS
        op = Operation(next(self._numbers), text, kind, self._stamp(), bulk, self.fail_next)
        op.base_url = self.base_url
        self.fail_next = None
        self.all.append(op)
        return op

    def get(self, node_id: str) -> Operation | None:
        return next((op for op in self.all if op.id == node_id), None)

    def current(self) -> Operation | None:
        return self.all[-1] if self.all else None

    def cancel(self, op: Operation) -> str | None:
        """Start cancelling; the reason it cannot be, if it cannot."""
        if op.status not in ("CREATED", "RUNNING"):
            return f"A bulk operation cannot be canceled when it is {op.status.lower()}"
        op.status, op.stopping = "CANCELING", True
        return None

    async def advance(self, op: Operation, schema: GraphQLSchema) -> None:
        """One step of the lifecycle (a read of the operation is one unit of time)."""
        if op.status == "CREATED":
            op.status = "RUNNING"
            op.path = self.directory / f"{op.number}.jsonl"
            roots = self.roots(op, schema)
            op.task = asyncio.ensure_future(
                asyncio.to_thread(jsonl.write, op.path, roots, op.written, lambda: op.stopping)
            )
        elif op.status == "CANCELING":
            await self._stop(op)
            op.status, op.completed_at = "CANCELED", self._stamp()
        elif op.status == "RUNNING" and op.task is not None:
            await asyncio.wait({op.task}, timeout=self.wait_s)
            if not op.task.done():
                return
            op.completed_at = self._stamp()
            if op.task.exception() is not None:
                op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
            elif op.failure is not None:
                op.status, op.error_code = "FAILED", op.failure.error_code
            else:
                op.status = "COMPLETED"

    async def _stop(self, op: Operation) -> None:
        op.stopping = True
        if op.task is not None:
            await asyncio.wait({op.task})

    async def close(self) -> None:
        """Stop every export still being written (the sandbox is stopping); remove the exports
        when their folder was the sandbox's own temporary one."""
        for op in self.all:
            await self._stop(op)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def roots(self, op: Operation, schema: GraphQLSchema) -> Iterator[Iterator[JSON]]:
        fragments = {
            d.name.value: d for d in op.bulk.document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        projector = jsonl.Projector(schema, fragments)
        query_type = schema.query_type
        assert query_type is not None
        connection = get_named_type(query_type.fields[op.kind].type)
        element = get_named_type(connection.fields["nodes"].type).name
        selections = _node_selections(projector, op.bulk.root, connection.name)
        records = self.shop.nodes(op.kind)
        if op.failure is not None:
            records = itertools.islice(records, op.failure.after_roots)
        for record in records:
            yield (line for selection in selections for line in projector.lines(record, selection, element))


def _node_selections(
    projector: jsonl.Projector, root: FieldNode, connection: str
) -> list[SelectionSetNode | None]:
    found: list[SelectionSetNode | None] = []
    for part in projector.fields(root.selection_set, connection):
        if part.name.value == "nodes":
            found.append(part.selection_set)
        elif part.name.value == "edges":
            edge_type = connection.removesuffix("Connection") + "Edge"
            found.extend(
                p.selection_set
                for p in projector.fields(part.selection_set, edge_type)
                if p.name.value == "node"
            )
    return found
