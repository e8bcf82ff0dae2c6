"""The account: one SQLite connection, one transaction per API call, and read-only connections
for the dump.

A failed call (any HubSpotError) rolls back, so a rejected batch leaves no partial writes.
The event loop is the only user of the writing connection; calls are short and never await.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from hubspot_sandbox import db, pipelines, properties, property_groups
from hubspot_sandbox.timestamps import now_ms

T = TypeVar("T")


class Store:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn = db.connect(path)
        with self._conn:
            self._seed()

    def _seed(self) -> None:
        now = now_ms()
        property_groups.seed(self._conn)
        properties.seed(self._conn, now)
        pipelines.seed(self._conn, now)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._conn:
            yield self._conn

    def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run one API call's work atomically: committed if it returns, rolled back if it raises."""
        with self._transaction() as conn:
            return operation(conn)

    def next_event_id(self) -> int:
        with self._transaction() as conn:
            return db.take(conn, "next_event_id")

    def reset(self) -> None:
        """Wipe the account back to a new portal's state (default pipeline and built-in properties)."""
        with self._transaction() as conn:
            db.wipe(conn)
            self._seed()

    @property
    def in_memory(self) -> bool:
        return str(self._path) == ":memory:"

    def reader(self) -> sqlite3.Connection:
        """A read-only connection of its own (see ``db.reader``): the dump reads on it, in a
        thread, beside the calls' writes. The caller closes it."""
        return db.reader(self._path)
