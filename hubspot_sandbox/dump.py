"""The whole account as one JSON document (``GET /_sandbox/dump``), made piece by piece.

An account of 1,000,000 records is a few hundred MB of JSON: built as one object it held the
event loop for tens of seconds (every call waited) and took gigabytes. ``pieces`` reads it a
page of records at a time from one read transaction, so the document is one consistent snapshot
while writes go on beside it (WAL: the reader sees the file as it was when it began); the admin
route runs it on a read-only connection in a worker thread and streams each piece as it comes.

The shape is the one callers read: ``{"contacts": [...], "deals": [...], "products": [...],
"line_items": [...], "companies": [...], "orders": [...], "carts": [...], "associations": [...],
"pipelines": [...], "order_pipelines": [...], "archived": {type: count}}``, live records ordered
by id, deals and orders with ``pipeline_label`` and ``stage_label``; ``pipelines`` are the deal
pipelines (as before orders came), ``order_pipelines`` the order ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterator

import orjson

from hubspot_sandbox import pipelines, subscriptions
from hubspot_sandbox.catalog import OBJECT_TYPES, PIPELINE_FIELDS
from hubspot_sandbox.errors import JSON
from hubspot_sandbox.timestamps import iso

PAGE = 1_000

# The computed properties are left out of the dump's records (they repeat id/createdAt/updatedAt),
# so two dumps of the same account built at different times compare equal.
_HIDDEN = {"hs_object_id", "createdate", "hs_createdate", "lastmodifieddate", "hs_lastmodifieddate"}


def pieces(conn: sqlite3.Connection) -> Generator[bytes]:
    """The document's bytes, in pieces of about a page of records, all from one snapshot."""
    conn.execute("BEGIN")
    try:
        pipeline_labels, stage_labels = pipelines.labels(conn)
        yield b"{"
        for index, name in enumerate(OBJECT_TYPES):
            yield (b"," if index else b"") + orjson.dumps(name) + b":["
            joiner = b""
            fields = PIPELINE_FIELDS.get(name)
            for items in _live_pages(conn, name):
                if fields is not None:
                    for item in items:
                        shown = item["properties"]
                        item["pipeline_label"] = pipeline_labels.get(shown.get(fields.pipeline, ""))
                        item["stage_label"] = stage_labels.get(shown.get(fields.stage, ""))
                yield joiner + orjson.dumps(items)[1:-1]  # the list's items, without its brackets
                joiner = b","
            yield b"]"
        yield b',"associations":['
        joiner = b""
        for rows in _association_pages(conn):
            yield joiner + orjson.dumps(rows)[1:-1]
            joiner = b","
        yield b'],"pipelines":' + orjson.dumps(pipelines.list_all(conn, "deals"))
        yield b',"order_pipelines":' + orjson.dumps(pipelines.list_all(conn, "orders"))
        yield b',"subscriptions":' + orjson.dumps(subscriptions.all_statuses(conn))  # X4
        yield b',"archived":' + orjson.dumps(_archived_counts(conn)) + b"}"
    finally:
        conn.rollback()


def _live_pages(conn: sqlite3.Connection, object_type: str) -> Iterator[list[JSON]]:
    """The type's live records, a page at a time, in ``records.render``'s shape without the
    hidden properties and ``archived``: two queries a page (the objects by the type's index,
    their values by the values' key, already in name order), read as plain tuples."""
    cursor = conn.cursor()
    cursor.row_factory = None
    after = 0
    while True:
        page = cursor.execute(
            "SELECT id, created_ms, updated_ms FROM objects WHERE type = ? AND archived_ms IS NULL"
            " AND id > ? ORDER BY id LIMIT ?",
            (object_type, after, PAGE),
        ).fetchall()
        if not page:
            return
        shown: dict[int, dict[str, str]] = {row[0]: {} for row in page}
        values = cursor.execute(
            f"SELECT object_id, name, value FROM prop_values WHERE object_id IN ({','.join('?' * len(page))})"
            f" AND name NOT IN ({','.join('?' * len(_HIDDEN))}) ORDER BY object_id, name",
            (*shown, *sorted(_HIDDEN)),
        )
        for object_id, name, value in values:
            shown[object_id][name] = value
        yield [
            {"id": str(i), "properties": shown[i], "createdAt": iso(created), "updatedAt": iso(updated)}
            for i, created, updated in page
        ]
        after = page[-1][0]


def _association_pages(conn: sqlite3.Connection) -> Iterator[list[JSON]]:
    cursor = conn.execute(
        "SELECT from_type, from_id, to_type, to_id, type_id FROM associations"
        " ORDER BY from_type, from_id, to_type, to_id, type_id"
    )
    while rows := cursor.fetchmany(PAGE):
        yield [
            {"from_type": r[0], "from_id": str(r[1]), "to_type": r[2], "to_id": str(r[3]), "type_id": r[4]}
            for r in rows
        ]


def _archived_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Archived records per type: a count over ``objects_by_type``'s archived range, no records read."""
    return {
        name: int(
            conn.execute(
                "SELECT COUNT(*) FROM objects WHERE type = ? AND archived_ms IS NOT NULL", (name,)
            ).fetchone()[0]
        )
        for name in OBJECT_TYPES
    }
