"""The database schema and every change to it, in one place. A database records its schema version in
``PRAGMA user_version``; opening one for writing brings it up to SCHEMA_VERSION, one migration at a time,
each in the transaction that also records its new version. A file of a newer version is refused.

To change the schema: add the statements that take version N to N + 1 to MIGRATIONS under N, change
CREATE to what a new database gets, and raise SCHEMA_VERSION; a test opens a database written by each
released version (tests/data)."""

from __future__ import annotations

import sqlite3

APPLICATION_ID = 0x57475031  # "WGP1"
SCHEMA_VERSION = 6

# each process of a cell that repeats (protocol.repeats), stored as it ends: part of CREATE, and migration 3
REPEATS = """
CREATE TABLE repeats (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (run_id, cell_id, repeat),
    FOREIGN KEY (run_id, cell_id) REFERENCES cells(run_id, cell_id)
);
"""

# the outcome of each probe of a batch search (--batch-size max), a few iterations that show whether the
# batch fits, stored as it ends: part of CREATE, and migration 4. The probes that are not the search's
# answer go on to results when the search of their configuration ends; the answer is measured in full.
PROBES = """
CREATE TABLE probes (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (run_id, cell_id),
    FOREIGN KEY (run_id, cell_id) REFERENCES cells(run_id, cell_id)
);
"""

# the machines results ran on other than their run's own (runs.environment_json), by content hash, each
# stored once however many results and runs name it; results.machine_id names one (NULL: the run's own,
# as every result written before version 6 reads): part of CREATE, and migration 5
MACHINES = """
CREATE TABLE machines (
    machine_id TEXT PRIMARY KEY,
    machine_json TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
"""

CREATE = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    wattgap_version TEXT NOT NULL,
    config_json TEXT NOT NULL,
    environment_json TEXT NOT NULL,
    tags_json TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE cells (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    cell_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    model TEXT NOT NULL,
    workload TEXT NOT NULL,
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    threads INTEGER,
    later_fields_json TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, cell_id)
);
CREATE TABLE results (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    median_latency_s REAL,
    throughput_sps REAL,
    schema_version INTEGER NOT NULL,
    result_json TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    machine_id TEXT REFERENCES machines(machine_id),
    PRIMARY KEY (run_id, cell_id),
    FOREIGN KEY (run_id, cell_id) REFERENCES cells(run_id, cell_id)
);
"""

# MIGRATIONS[n]: the statements that take a database of version n to version n + 1.
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE runs ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';",  # 2: runs carry tags
    # 3: the cell fields added after the first schema (memory_format, ...), those off their default, as
    # JSON: the same rule as the cell id, so that a new axis needs no migration of its own
    2: "ALTER TABLE cells ADD COLUMN later_fields_json TEXT NOT NULL DEFAULT '{}';",
    # 4: each process of a cell that repeats (protocol.repeats), stored as it ends; results holds the
    # cell's combined result once the last is in
    3: REPEATS,
    # 5: the probes of batch searches, which a few iterations measure
    4: PROBES,
    # 6: results name the machine that ran them, when it is not their run's own
    5: MACHINES + "ALTER TABLE results ADD COLUMN machine_id TEXT REFERENCES machines(machine_id);",
}


def tags_column(version: int) -> str:
    """The SQL that reads a run's tags (JSON) from a database of ``version``: databases opened read-only
    are read as they are, not upgraded, so readers ask here for columns later versions added."""
    return "r.tags_json" if version >= 2 else "'[]'"


def later_fields_column(version: int) -> str:
    """The SQL that reads a cell's later fields (JSON), as tags_column does for tags."""
    return "later_fields_json" if version >= 3 else "'{}'"


def has_repeats(version: int) -> bool:
    """Whether a database of ``version`` has the repeats table (read-only opens are not upgraded)."""
    return version >= 4


def has_probes(version: int) -> bool:
    """Whether a database of ``version`` has the probes table."""
    return version >= 5


def has_machines(version: int) -> bool:
    """Whether a database of ``version`` has the machines table and results.machine_id."""
    return version >= 6


def version_of(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def create(connection: sqlite3.Connection) -> None:
    """The schema of the current version, in the caller's transaction (so that a concurrent or
    interrupted creation leaves either nothing or all of it)."""
    for statement in _statements(CREATE + REPEATS + PROBES + MACHINES):
        connection.execute(statement)
    connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
    connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def upgrade(connection: sqlite3.Connection) -> None:
    """Bring an older database up to SCHEMA_VERSION, in the caller's transaction."""
    for version in range(version_of(connection), SCHEMA_VERSION):
        for statement in _statements(MIGRATIONS[version]):
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version={version + 1}")
