"""The store's file and schema: where it lives, the ``exchanges`` table, its migrations.

The columns are the event fields people filter and sort on (indexed); the rest of the event
is kept as JSON in ``extra``, so a field added to the event later is stored without a
migration. The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes a
store from version n-1 to n, in one transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

STORE_FILENAME = "deliveries.db"
SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's own files beside the database
SCHEMA_VERSION = 1

# Event fields that have a column of their own (the rest go to ``extra``).
COLUMNS: tuple[str, ...] = (
    "request_id",
    "sender",
    "method",
    "url",
    "host",
    "rule",
    "decision",
    "reason",
    "status",
    "webhook_id",
    "replay_of",
    "duration_ms",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            request_id TEXT,
            sender TEXT,
            method TEXT,
            url TEXT,
            host TEXT,
            host_rev TEXT,
            path TEXT,
            rule TEXT,
            decision TEXT,
            reason TEXT,
            status INTEGER,
            status_class INTEGER,
            webhook_id TEXT,
            replay_of TEXT,
            duration_ms REAL,
            extra TEXT NOT NULL,
            request_headers TEXT,
            request_body BLOB,
            request_truncated INTEGER NOT NULL DEFAULT 0,
            response_headers TEXT,
            response_body BLOB,
            response_truncated INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX ix_ts ON exchanges (ts)",
        "CREATE INDEX ix_request_id ON exchanges (request_id)",
        "CREATE INDEX ix_host_ts ON exchanges (host, ts)",
        "CREATE INDEX ix_host_rev_ts ON exchanges (host_rev, ts)",
        # status // 100: "5xx, newest first" is an equality, so the index is already in order
        "CREATE INDEX ix_status_class_ts ON exchanges (status_class, ts)",
        "CREATE INDEX ix_webhook_id ON exchanges (webhook_id) WHERE webhook_id IS NOT NULL",
        "CREATE INDEX ix_sender_ts ON exchanges (sender, ts) WHERE sender IS NOT NULL",
        "CREATE INDEX ix_reason_ts ON exchanges (reason, ts) WHERE reason IS NOT NULL",
        "CREATE INDEX ix_denied_ts ON exchanges (ts) WHERE decision = 'deny'",
        "CREATE INDEX ix_replay_of ON exchanges (replay_of) WHERE replay_of IS NOT NULL",
    ),
}


def store_path(data_dir: Path) -> Path:
    return data_dir / STORE_FILENAME


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Take a store at schema ``version`` to ``SCHEMA_VERSION``, one transaction per step."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
