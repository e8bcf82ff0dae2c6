"""Rows of CRM records: one ``objects`` row plus one ``prop_values`` row per set property.

Values are stored as HubSpot stores them, as strings; ``norm`` (lower case) serves the
case-insensitive lookups HubSpot does for unique values and search. The computed properties
(id, create and modified dates) are stored like any other so reads and searches treat them alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hubspot_sandbox.catalog import OBJECT_TYPES
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


def live_ids(conn: sqlite3.Connection, object_type: str, ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` are live records of that type: their ``objects`` rows only, no values."""
    wanted = sorted(set(ids))
    out: set[int] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            f"SELECT id FROM objects WHERE type = ? AND id IN ({','.join('?' * len(chunk))})"
            " AND archived_ms IS NULL",
            (object_type, *chunk),
        )
        out.update(row[0] for row in rows)
    return out


def load_one(
    conn: sqlite3.Connection, object_type: str, object_id: int, *, archived: bool | None
) -> Record | None:
    return load(conn, object_type, [object_id], archived=archived).get(object_id)


def find(
    conn: sqlite3.Connection, object_type: str, name: str, value: str, *, archived: bool | None
) -> list[int]:
    """Ids whose unique property ``name`` equals ``value`` case-insensitively, newest first."""
    return find_many(conn, object_type, name, [value], archived=archived).get(norm(value), [])


def find_many(
    conn: sqlite3.Connection, object_type: str, name: str, values: Iterable[str], *, archived: bool | None
) -> dict[str, list[int]]:
    """For each value (by its ``norm``) the ids whose unique property ``name`` holds it, newest
    first: one indexed query per 500 values, however many inputs a batch has.

    Only unique values are in the index (``uniq`` = 1, see ``db``), so only a unique property can
    be looked up; that is all HubSpot looks records up by. ``CROSS JOIN`` keeps SQLite's join
    order: the value's index first, then each match's object. Left to itself SQLite walked every
    object of the type (``objects_by_type``) and probed each one's value."""
    wanted = sorted({norm(v) for v in values})
    out: dict[str, list[int]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            "SELECT p.norm, o.id FROM prop_values p CROSS JOIN objects o ON o.id = p.object_id"
            f" WHERE p.name = ? AND p.uniq = 1 AND p.norm IN ({','.join('?' * len(chunk))})"
            f" AND o.type = ?{_archived_clause(archived)} ORDER BY o.id DESC",
            (name, *chunk, object_type),
        )
        for value, object_id in rows:
            out.setdefault(value, []).append(object_id)
    return out


def insert(
    conn: sqlite3.Connection, object_type: str, values: Mapping[str, str], now: int, unique: Collection[str]
) -> Record:
    return insert_many(conn, object_type, [values], now, unique)[0]


def insert_many(
    conn: sqlite3.Connection,
    object_type: str,
    values: Sequence[Mapping[str, str]],
    now: int,
    unique: Collection[str],
) -> list[Record]:
    """New records, ids in input order, in three statements whatever their number. ``unique`` names
    the type's unique properties (their values go in the lookup index)."""
    if not values:
        return []
    first = take(conn, count=len(values))
    created = [Record(first + i, object_type, now, now, None) for i in range(len(values))]
    conn.executemany(
        "INSERT INTO objects (id, type, created_ms, updated_ms) VALUES (?, ?, ?, ?)",
        [(r.id, object_type, now, now) for r in created],
    )
    stamp, created_property = iso(now), OBJECT_TYPES[object_type].created_property
    rows = []
    for record, given in zip(created, values, strict=True):
        record.values.update({**given, "hs_object_id": str(record.id), created_property: stamp})
        rows.extend(_stamp(record, now, unique))
    _store_values(conn, rows)
    return created


def write(
    conn: sqlite3.Connection,
    record: Record,
    changes: Mapping[str, str | None],
    now: int,
    unique: Collection[str],
) -> bool:
    """Apply ``changes`` (None clears); returns whether anything changed. Only a real change moves
    the modified date, so a replayed upsert leaves the record exactly as it was."""
    effective = {k: v for k, v in changes.items() if record.values.get(k) != v}
    if not effective:
        return False
    cleared = [k for k, v in effective.items() if v is None]
    if cleared:
        conn.executemany(
            "DELETE FROM prop_values WHERE object_id = ? AND name = ?", [(record.id, n) for n in cleared]
        )
    for name in cleared:
        record.values.pop(name, None)
    set_now = {k: v for k, v in effective.items() if v is not None}
    record.values.update(set_now)
    _store_values(conn, _stamp(record, now, unique, set_now))
    conn.execute("UPDATE objects SET updated_ms = ? WHERE id = ?", (now, record.id))
    record.updated_ms = now
    return True


Row = tuple[int, str, str, str, int]


def _stamp(
    record: Record, now: int, unique: Collection[str], names: Iterable[str] | None = None
) -> list[Row]:
    """The rows to store: ``names`` (every value when None) and the modified dates, set to now."""
    stamp = iso(now)
    record.values.update({"lastmodifieddate": stamp, "hs_lastmodifieddate": stamp})
    chosen = record.values.keys() if names is None else [*names, "lastmodifieddate", "hs_lastmodifieddate"]
    return [
        (record.id, name, record.values[name], norm(record.values[name]), int(name in unique))
        for name in chosen
    ]


def _store_values(conn: sqlite3.Connection, rows: list[Row]) -> None:
    conn.executemany(
        "INSERT INTO prop_values (object_id, name, value, norm, uniq) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (object_id, name) DO UPDATE SET value = excluded.value, norm = excluded.norm,"
        " uniq = excluded.uniq",
        rows,
    )


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
