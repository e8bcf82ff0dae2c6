"""The account: one SQLite connection, one transaction per API call, and the whole-account dump.

A failed call (any HubSpotError) rolls back, so a rejected batch leaves no partial writes.
The event loop is the only user of the connection; calls are short and never await.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from hubspot_sandbox import associations, db, pipelines, properties, property_groups, records
from hubspot_sandbox.catalog import OBJECT_TYPES
from hubspot_sandbox.errors import JSON
from hubspot_sandbox.timestamps import now_ms

T = TypeVar("T")

# The computed properties are left out of the dump's records (they repeat id/createdAt/updatedAt),
# so two dumps of the same account built at different times compare equal.
_DUMP_HIDDEN = {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"}


class Store:
    def __init__(self, path: Path) -> None:
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

    def dump(self) -> JSON:
        """Every live record, association and pipeline, ordered by id; archived ones only counted."""
        with self._transaction() as conn:
            pipeline_labels, stage_labels = pipelines.labels(conn)
            out: JSON = {}
            archived: dict[str, int] = {}
            for name in OBJECT_TYPES:
                ids = [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM objects WHERE type = ? AND archived_ms IS NULL", (name,)
                    )
                ]
                loaded = records.load(conn, name, ids, archived=False)
                items = []
                for object_id in sorted(loaded):
                    item = records.render(loaded[object_id], None)
                    item["properties"] = {
                        k: v for k, v in item["properties"].items() if k not in _DUMP_HIDDEN
                    }
                    del item["archived"]
                    if name == "deals":
                        values = loaded[object_id].values
                        item["pipeline_label"] = pipeline_labels.get(values.get("pipeline", ""))
                        item["stage_label"] = stage_labels.get(values.get("dealstage", ""))
                    items.append(item)
                out[name] = items
                row = conn.execute(
                    "SELECT COUNT(*) FROM objects WHERE type = ? AND archived_ms IS NOT NULL", (name,)
                ).fetchone()
                archived[name] = int(row[0])
            out["associations"] = associations.all_rows(conn)
            out["pipelines"] = pipelines.list_all(conn)
            out["archived"] = archived
            return out
