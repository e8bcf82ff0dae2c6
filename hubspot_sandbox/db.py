"""The SQLite file: its tables, and the id sequence every object, pipeline and stage draws from.

One sequence for everything means a deal id never equals a contact id, so a writer that mixes
ids up gets a 404 here rather than silently touching the wrong record.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

FIRST_ID = 1001

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    archived_ms INTEGER
);
CREATE INDEX IF NOT EXISTS objects_by_type ON objects (type, archived_ms);
CREATE TABLE IF NOT EXISTS prop_values (
    object_id INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    norm TEXT NOT NULL,
    PRIMARY KEY (object_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS prop_values_lookup ON prop_values (name, norm);
CREATE TABLE IF NOT EXISTS property_defs (
    object_type TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    PRIMARY KEY (object_type, name)
);
CREATE TABLE IF NOT EXISTS property_groups (
    object_type TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    display_order INTEGER NOT NULL,
    PRIMARY KEY (object_type, name)
);
CREATE TABLE IF NOT EXISTS pipelines (
    id TEXT PRIMARY KEY,
    object_type TEXT NOT NULL,
    label TEXT NOT NULL,
    display_order INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stages (
    id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    display_order INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS associations (
    from_id INTEGER NOT NULL,
    to_id INTEGER NOT NULL,
    type_id INTEGER NOT NULL,
    from_type TEXT NOT NULL,
    to_type TEXT NOT NULL,
    PRIMARY KEY (from_id, to_id, type_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS associations_by_to ON associations (to_id);
CREATE TABLE IF NOT EXISTS association_labels (
    type_id INTEGER PRIMARY KEY,
    from_type TEXT NOT NULL,
    to_type TEXT NOT NULL,
    label TEXT NOT NULL,
    name TEXT NOT NULL,
    inverse_id INTEGER NOT NULL
);
"""

DATA_TABLES = (
    "associations",
    "association_labels",
    "prop_values",
    "objects",
    "stages",
    "pipelines",
    "property_defs",
    "property_groups",
)


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the file. WAL keeps each commit cheap; the sandbox commits per request."""
    conn = sqlite3.connect(str(path))
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_SCHEMA)
    with conn:
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('next_id', ?)", (FIRST_ID,))
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('next_event_id', 1)")
    return conn


def take(conn: sqlite3.Connection, counter: str = "next_id", count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers of a persistent counter and return the first."""
    row = conn.execute(
        "UPDATE meta SET value = value + ? WHERE key = ? RETURNING value", (count, counter)
    ).fetchone()
    return int(row[0]) - count


def wipe(conn: sqlite3.Connection) -> None:
    """Delete the account's data; the counters carry on so no id is ever handed out twice."""
    for table in DATA_TABLES:
        conn.execute(f"DELETE FROM {table}")  # fixed names, never input
