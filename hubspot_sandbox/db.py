"""The SQLite file: its tables, and the id sequence every object, pipeline and stage draws from.

One sequence for everything means a deal id never equals a contact id, so a writer that mixes
ids up gets a 404 here rather than silently touching the wrong record.

Every lookup a call makes is by an index: a record by its id (``objects``' key), its values by
``prop_values``' key, a unique value (email, hasUniqueValue properties) by ``prop_values_unique``,
links by ``associations``' key or ``associations_by_to``. Only the unique values are in the
value index (``uniq`` = 1): indexing every value made each new record cost a random insert per
property into one big index, which is what slows a SQLite file as it grows. The tests read the
plans (``tests/sandbox/test_sandbox_query_plans.py``), so a query that scans fails them.
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
    uniq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (object_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS prop_values_unique ON prop_values (name, norm) WHERE uniq = 1;
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
CREATE INDEX IF NOT EXISTS stages_by_pipeline ON stages (pipeline_id, label);
CREATE INDEX IF NOT EXISTS pipelines_by_label ON pipelines (object_type, label);
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
CREATE INDEX IF NOT EXISTS association_labels_by_pair ON association_labels (from_type, to_type, name);
CREATE TABLE IF NOT EXISTS subscription_statuses (
    email TEXT NOT NULL,
    subscription_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    legal_basis TEXT,
    legal_basis_explanation TEXT,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (email, subscription_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wide_opt_outs (email TEXT PRIMARY KEY, updated_ms INTEGER NOT NULL) WITHOUT ROWID;
"""

# A file written before ``uniq`` (every value in one index): flag the unique values, swap the index.
_MIGRATE_UNIQ = """
BEGIN;
ALTER TABLE prop_values ADD COLUMN uniq INTEGER NOT NULL DEFAULT 0;
UPDATE prop_values SET uniq = 1 WHERE EXISTS (
    SELECT 1 FROM objects o WHERE o.id = prop_values.object_id AND (
        (o.type = 'contacts' AND prop_values.name = 'email')
        OR EXISTS (
            SELECT 1 FROM property_defs d WHERE d.object_type = o.type AND d.name = prop_values.name
            AND json_extract(d.definition, '$.hasUniqueValue')
        )
    )
);
DROP INDEX IF EXISTS prop_values_lookup;
COMMIT;
"""

# Pragmas of a sandbox: its file is a test double, so a commit need not survive a power cut
# (synchronous OFF: no fsync; a killed process still loses nothing). A big page cache and the file
# mapped in memory keep the indexes of a 1,000,000-record account (about 0.6 GB) off the read path;
# checkpoints every 10,000 pages (not 1,000) so the writer rarely pays for one inside a call.
PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = OFF",
    "PRAGMA cache_size = -262144",  # KiB: up to 256 MiB, taken only as pages are read
    "PRAGMA mmap_size = 2147483648",
    "PRAGMA wal_autocheckpoint = 10000",
    "PRAGMA journal_size_limit = 67108864",  # the WAL a long dump let grow is cut back after it
    "PRAGMA temp_store = MEMORY",
)

DATA_TABLES = (
    "subscription_statuses",
    "wide_opt_outs",
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
    """Open (or create) the file. WAL keeps each commit cheap (the sandbox commits per request) and
    lets a reader (the dump, ``reader``) run beside the writer on a snapshot of its own."""
    conn = sqlite3.connect(str(path))
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    if str(path) != ":memory:":
        for pragma in PRAGMAS:
            conn.execute(pragma)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(prop_values)")}
    if columns and "uniq" not in columns:
        conn.executescript(_MIGRATE_UNIQ)
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


def reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to the same file, for work that runs in a thread beside the event
    loop's writes (the dump): WAL gives it one consistent snapshot per transaction, and it never
    blocks a write nor waits for one. It is used by one thread at a time (not always the same)."""
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in ("PRAGMA cache_size = -65536", "PRAGMA mmap_size = 2147483648"):
        conn.execute(pragma)
    return conn
