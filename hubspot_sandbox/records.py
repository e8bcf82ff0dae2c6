"""Rows of CRM records: one ``objects`` row plus one ``prop_values`` row per set property.

Values are stored as HubSpot stores them, as strings; ``norm`` (lower case) serves the
case-insensitive lookups HubSpot does for unique values and search. The computed properties
(id, create and modified dates) are stored like any other so reads and searches treat them alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hubspot_sandbox.db import take
from hubspot_sandbox.errors import JSON
from hubspot_sandbox.timestamps import iso


@dataclass
class Record:
    id: int
    type: str
    created_ms: int
    updated_ms: int
    archived_ms: int | None
    values: dict[str, str] = field(default_factory=dict)

    @property
    def archived(self) -> bool:
        return self.archived_ms is not None


def norm(value: str) -> str:
    return value.lower()


def _archived_clause(archived: bool | None) -> str:
    if archived is None:
        return ""
    return " AND archived_ms IS NOT NULL" if archived else " AND archived_ms IS NULL"


def load(
    conn: sqlite3.Connection, object_type: str, ids: Iterable[int], *, archived: bool | None
) -> dict[int, Record]:
    """The records among ``ids`` of that type; ``archived`` None means either state."""
    wanted = sorted(set(ids))
    out: dict[int, Record] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT * FROM objects WHERE type = ? AND id IN ({marks}){_archived_clause(archived)}",
            (object_type, *chunk),
        )
        for row in rows:
            out[row["id"]] = Record(
                row["id"], row["type"], row["created_ms"], row["updated_ms"], row["archived_ms"]
            )
        if out:
            values = conn.execute(
                f"SELECT object_id, name, value FROM prop_values WHERE object_id IN ({marks})", tuple(chunk)
            )
            for object_id, name, value in values:
                if object_id in out:
                    out[object_id].values[name] = value
    return out


def load_one(
    conn: sqlite3.Connection, object_type: str, object_id: int, *, archived: bool | None
) -> Record | None:
    return load(conn, object_type, [object_id], archived=archived).get(object_id)


def find(
    conn: sqlite3.Connection, object_type: str, name: str, value: str, *, archived: bool | None
) -> list[int]:
    """Ids whose property equals ``value`` case-insensitively, newest first.

    ``CROSS JOIN`` keeps SQLite's join order: the value's index first, then each match's object.
    Left to itself SQLite walked every object of the type (``objects_by_type``) and probed each
    one's value, so every lookup cost the whole table and a 40,000-contact account took ~0.5 s
    per 100-input batch: the sandbox, not the rate limit, bounded a writer."""
    rows = conn.execute(
        "SELECT o.id FROM prop_values p CROSS JOIN objects o ON o.id = p.object_id"
        f" WHERE p.name = ? AND p.norm = ? AND o.type = ?{_archived_clause(archived)} ORDER BY o.id DESC",
        (name, norm(value), object_type),
    )
    return [row[0] for row in rows]


def insert(conn: sqlite3.Connection, object_type: str, values: Mapping[str, str], now: int) -> Record:
    object_id = take(conn)
    conn.execute(
        "INSERT INTO objects (id, type, created_ms, updated_ms) VALUES (?, ?, ?, ?)",
        (object_id, object_type, now, now),
    )
    record = Record(object_id, object_type, now, now, None)
    stamps = {"hs_object_id": str(object_id), "createdate": iso(now)}
    _set(conn, record, {**values, **stamps}, now)
    return record


def write(conn: sqlite3.Connection, record: Record, changes: Mapping[str, str | None], now: int) -> bool:
    """Apply ``changes`` (None clears); returns whether anything changed. Only a real change moves
    the modified date, so a replayed upsert leaves the record exactly as it was."""
    effective = {k: v for k, v in changes.items() if record.values.get(k) != v}
    if not effective:
        return False
    cleared = [k for k, v in effective.items() if v is None]
    for name in cleared:
        conn.execute("DELETE FROM prop_values WHERE object_id = ? AND name = ?", (record.id, name))
        record.values.pop(name, None)
    _set(conn, record, {k: v for k, v in effective.items() if v is not None}, now)
    conn.execute("UPDATE objects SET updated_ms = ? WHERE id = ?", (now, record.id))
    record.updated_ms = now
    return True


def _set(conn: sqlite3.Connection, record: Record, values: Mapping[str, str], now: int) -> None:
    stamped = {**values, "lastmodifieddate": iso(now), "hs_lastmodifieddate": iso(now)}
    conn.executemany(
        "INSERT OR REPLACE INTO prop_values (object_id, name, value, norm) VALUES (?, ?, ?, ?)",
        [(record.id, name, value, norm(value)) for name, value in stamped.items()],
    )
    record.values.update(stamped)


def archive(conn: sqlite3.Connection, record: Record, now: int) -> None:
    conn.execute("UPDATE objects SET archived_ms = ? WHERE id = ?", (now, record.id))
    record.archived_ms = now


def delete(conn: sqlite3.Connection, object_id: int) -> None:
    """Permanent (GDPR) deletion: the row and every value go; nothing can read it afterwards."""
    conn.execute("DELETE FROM prop_values WHERE object_id = ?", (object_id,))
    conn.execute("DELETE FROM objects WHERE id = ?", (object_id,))


def render(record: Record, names: Iterable[str] | None) -> JSON:
    """HubSpot's record shape. ``names`` None gives every set property (the dump); otherwise the
    named properties, null where unset, as HubSpot answers a read."""
    if names is None:
        properties: dict[str, str | None] = dict(sorted(record.values.items()))
    else:
        properties = {name: record.values.get(name) for name in sorted(set(names))}
    body: JSON = {
        "id": str(record.id),
        "properties": properties,
        "createdAt": iso(record.created_ms),
        "updatedAt": iso(record.updated_ms),
        "archived": record.archived,
    }
    if record.archived_ms is not None:
        body["archivedAt"] = iso(record.archived_ms)
    return body
