"""Filling an account fast: records and links written straight into the store, in bulk.

For benchmarks and scale tests that need an account of 1,000,000 records before they time
anything: going through HTTP would take hours at HubSpot's rate limit and would measure the
seeding, not the calls. Nothing is checked as a write through the API is (property definitions,
uniqueness, pipeline rules): the caller gives valid values, unique where the account wants them
unique. The rows are the API's own (``records.insert_many``, ``associations.link_many``: the same
stamps, the unique values indexed, both directions of a link), so every call treats them alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import TypeVar

from hubspot_sandbox import associations, properties, records
from hubspot_sandbox.catalog import OBJECT_TYPES, AssociationType
from hubspot_sandbox.checks import unique_names

CHUNK = 10_000
T = TypeVar("T")


def _chunks(items: Iterable[T]) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


def add_records(
    conn: sqlite3.Connection, object_type: str, rows: Iterable[Mapping[str, str]], now_ms: int
) -> list[int]:
    """Insert one record per mapping of property values; returns their ids, in order."""
    unique = unique_names(OBJECT_TYPES[object_type], properties.load(conn, object_type))
    ids: list[int] = []
    for chunk in _chunks(rows):
        ids.extend(r.id for r in records.insert_many(conn, object_type, chunk, now_ms, unique))
    return ids


def add_links(conn: sqlite3.Connection, kind: AssociationType, pairs: Iterable[tuple[int, int]]) -> None:
    """Link each (from id, to id) with ``kind``."""
    for chunk in _chunks(pairs):
        associations.link_many(conn, kind, chunk)
