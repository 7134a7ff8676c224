"""The delivery store: one SQLite file in the data dir, one row per exchange.

- WAL mode: the proxy's writer thread appends while ``hookwall logs`` reads, neither waits.
- The file and its bodies are private (0600, and so are SQLite's side files).
- :class:`Store` is one connection. It opens the file here (creating or migrating it with
  ``schema.py``) and does the rest through its parts: ``writing.py`` (inserts),
  ``retention.py`` (age and size limits, called periodically by the writer) and
  ``reading.py`` (the queries).

No mitmproxy here: the proxy, the CLI, the tests and the benchmark all use this class.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from hookwall.core.files import create_private, narrow
from hookwall.deliveries.store.reading import Reading
from hookwall.deliveries.store.retention import Pruning
from hookwall.deliveries.store.schema import SCHEMA_VERSION, SIDE_FILES, migrate
from hookwall.deliveries.store.writing import Writing


class StoreError(Exception):
    """The store cannot be used (missing, corrupt, locked, from a newer hookwall)."""


class Store(Reading, Writing, Pruning):
    """A connection to the store. Not thread-safe: one thread per ``Store``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = 2.0) -> Store:
        """Open for writing, creating or migrating the file (the proxy's writer)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Bodies and headers are sensitive, even redacted: the file is created 0600, and
            # SQLite gives its -wal, -shm and -journal files the database's mode when it
            # creates them. Ones an older hookwall left wider are narrowed first.
            create_private(path)
            for suffix in SIDE_FILES:
                narrow(path.with_name(path.name + suffix))
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the delivery store {path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the delivery store {path} has schema version {version}, newer than this "
                    f"hookwall understands ({SCHEMA_VERSION}); upgrade hookwall or move the file"
                )
            if version == 0:
                # Only possible before the first table exists; a no-op on an older file.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot switch {path} to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            migrate(conn, version)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"the delivery store {path} is unusable: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        return cls(conn, path)

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open an existing store for queries (``hookwall logs``); never creates a file."""
        if not path.exists():
            raise StoreError(
                f"no delivery store at {path}: has hookwall run with this data dir? "
                "(pass --data-dir, or set HOOKWALL_DATA_DIR)"
            )
        try:
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA query_only = 1")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the delivery store {path}: {exc}") from exc
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the delivery store {path} has schema version {version}; this hookwall "
                f"reads version {SCHEMA_VERSION}"
            )
        return cls(conn, path)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA optimize")
        self.conn.close()
