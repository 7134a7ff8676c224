# ruff: noqa: S608
"""The delivery store: one SQLite file in the data dir, one row per exchange.

- WAL mode: the proxy's writer thread appends while ``hookwall logs`` reads, neither waits.
- The columns are the fields people filter and sort on (indexed); the rest of the event is
  kept as JSON in ``extra``, so a field added to the event later is stored without a
  migration. Headers are JSON, bodies are BLOBs capped by ``logging.capture_body``.
- Retention by age and by size (``enforce_retention``), called periodically by the writer;
  ``auto_vacuum=INCREMENTAL`` gives the freed pages back to the file system.
- The schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes a store from
  version n-1 to n.

No mitmproxy here: the proxy, the CLI, the tests and the benchmark all use this class.

SQL text here is built from constants only (column names, "?" placeholders, int limits);
every value is a bound parameter, hence the S608 exemptions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookwall.core import jsontext
from hookwall.core.files import create_private, narrow
from hookwall.deliveries.logs import EXCHANGE_FIELDS
from hookwall.deliveries.redaction import redact_event, redact_headers
from hookwall.deliveries.store.query import Filters, where_clause
from hookwall.deliveries.store.record import Record

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

_INSERT = f"""INSERT INTO exchanges (
    ts, {", ".join(COLUMNS)}, status_class, host_rev, path, extra,
    request_headers, request_body, request_truncated,
    response_headers, response_body, response_truncated
) VALUES ({", ".join("?" * (len(COLUMNS) + 11))})"""

# Rows per INSERT statement; 32 rows x 24 columns stays under SQLite's historical limit of
# 999 parameters.
_CHUNKS = (32, 8, 2, 1)


@functools.cache
def _insert_rows(count: int) -> str:
    """``_INSERT`` for ``count`` rows at once."""
    head, _, values = _INSERT.rpartition(" VALUES ")
    return f"{head} VALUES {', '.join([values] * count)}"


_SUMMARY_COLUMNS = f"id, ts, {', '.join(COLUMNS)}, extra"
_ALL_COLUMNS = (
    f"{_SUMMARY_COLUMNS}, request_headers, request_body, request_truncated, "
    "response_headers, response_body, response_truncated"
)
# Age retention deletes in chunks so new rows never wait long behind a big sweep.
_DELETE_CHUNK = 5000


class StoreError(Exception):
    """The store cannot be used (missing, corrupt, locked, from a newer hookwall)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One exchange read back: the event as logged, plus what the store captured."""

    id: int
    ts: float
    event: dict[str, Any]
    request_headers: list[tuple[str, str]] | None = None
    request_body: bytes | None = None
    request_truncated: bool = False
    response_headers: list[tuple[str, str]] | None = None
    response_body: bytes | None = None
    response_truncated: bool = False

    @property
    def request_id(self) -> str | None:
        value = self.event.get("request_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RetentionResult:
    deleted_by_age: int
    deleted_by_size: int
    used_bytes: int


def store_path(data_dir: Path) -> Path:
    return data_dir / STORE_FILENAME


class Store:
    """A connection to the store. Not thread-safe: one thread per ``Store``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    # -- opening ------------------------------------------------------------------------------
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
            cls._migrate(conn, version)
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

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
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

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA optimize")
        self.conn.close()

    # -- writing ------------------------------------------------------------------------------
    def insert(self, records: Iterable[Record]) -> int:
        """Insert records in one transaction; returns how many."""
        rows = [_row_values(record) for record in records]
        if not rows:
            return 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            # Several rows per statement, not executemany: sqlite3 lets go of the GIL for
            # every step, and taking it back from a busy event loop thread can take up to
            # the 5 ms switch interval, so one step per row made the writer crawl and kept
            # interrupting the proxy. A few fixed chunk sizes keep the statement cache small.
            done = 0
            for size in _CHUNKS:
                while len(rows) - done >= size:
                    chunk = rows[done : done + size]
                    self.conn.execute(_insert_rows(size), [v for row in chunk for v in row])
                    done += size
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return len(rows)

    def used_bytes(self) -> int:
        """Bytes the live data takes (pages in use, not counting free pages)."""
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def enforce_retention(
        self, *, max_age: float, max_size: int, now: float | None = None
    ) -> RetentionResult:
        """Delete rows older than ``max_age`` seconds, then the oldest rows until the data
        fits in ``max_size`` bytes (with 10% headroom, so this does not run on every batch);
        give freed pages back to the file system."""
        now = time.time() if now is None else now
        by_age = 0
        cutoff = now - max_age
        while True:
            deleted = self._delete(
                "DELETE FROM exchanges WHERE id IN "
                "(SELECT id FROM exchanges WHERE ts < ? ORDER BY ts LIMIT ?)",
                (cutoff, _DELETE_CHUNK),
            )
            by_age += deleted
            if deleted < _DELETE_CHUNK:
                break
        by_size = 0
        used = self.used_bytes()
        if used > max_size:
            target = int(max_size * 0.9)
            for _ in range(20):  # each round removes a share proportional to the excess
                count = self.conn.execute("SELECT count(*) FROM exchanges").fetchone()[0]
                if count == 0 or used <= target:
                    break
                share = max(1, int(count * (used - target) / used) + 1)
                by_size += self._delete(
                    "DELETE FROM exchanges WHERE id IN "
                    "(SELECT id FROM exchanges ORDER BY id LIMIT ?)",
                    (share,),
                )
                used = self.used_bytes()
        if by_age or by_size:
            # Each step of this pragma frees pages: run it to completion.
            self.conn.execute("PRAGMA incremental_vacuum").fetchall()
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return RetentionResult(by_age, by_size, self.used_bytes())

    def _delete(self, sql: str, params: Sequence[object]) -> int:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return int(cursor.rowcount)

    # -- reading ------------------------------------------------------------------------------
    def query(self, filters: Filters, *, limit: int | None = 50, after_id: int = 0) -> list[Row]:
        """The newest ``limit`` matching rows (oldest first); with ``after_id``, every matching
        row after that id in insertion order (``--follow``)."""
        where, params = where_clause(filters)
        if after_id:
            where = f"({where}) AND id > ?"
            params = [*params, after_id]
            sql = f"SELECT {_SUMMARY_COLUMNS} FROM exchanges WHERE {where} ORDER BY id"
            if limit:
                sql += f" LIMIT {int(limit)}"
            return [_summary(row) for row in self.conn.execute(sql, params)]
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM exchanges WHERE {where} ORDER BY ts DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = [_summary(row) for row in self.conn.execute(sql, params)]
        rows.reverse()
        return rows

    def last_id(self) -> int:
        row = self.conn.execute("SELECT max(id) FROM exchanges").fetchone()
        return int(row[0] or 0)

    def get(self, key: str) -> Row | None:
        """One exchange in full, by request id (or by row number)."""
        sql = f"SELECT {_ALL_COLUMNS} FROM exchanges WHERE request_id = ? ORDER BY id DESC LIMIT 1"
        row = self.conn.execute(sql, (key,)).fetchone()
        if row is None and key.isdigit():
            row = self.conn.execute(
                f"SELECT {_ALL_COLUMNS} FROM exchanges WHERE id = ?", (int(key),)
            ).fetchone()
        return None if row is None else _full(row)

    def related(self, row: Row, *, limit: int = 200) -> list[Row]:
        """Every attempt linked to this one (same webhook id, replays of it, what it replays),
        oldest first, this one included."""
        clauses: list[str] = ["id = ?"]
        params: list[object] = [row.id]
        webhook = row.event.get("webhook_id")
        if webhook:
            clauses.append("webhook_id = ?")
            params.append(webhook)
        if row.request_id:
            clauses.append("replay_of = ?")
            params.append(row.request_id)
        if row.event.get("replay_of"):
            clauses.append("request_id = ?")
            params.append(row.event["replay_of"])
        sql = (
            f"SELECT {_SUMMARY_COLUMNS} FROM exchanges WHERE {' OR '.join(clauses)} "
            f"ORDER BY ts, id LIMIT {int(limit)}"
        )
        return [_summary(r) for r in self.conn.execute(sql, params)]

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM exchanges").fetchone()[0])

    def explain(self, filters: Filters, *, limit: int = 50) -> list[str]:
        """The query plan of ``query`` (for the benchmark and for checking index use)."""
        where, params = where_clause(filters)
        sql = (
            f"EXPLAIN QUERY PLAN SELECT {_SUMMARY_COLUMNS} FROM exchanges WHERE {where} "
            f"ORDER BY ts DESC, id DESC LIMIT {int(limit)}"
        )
        return [str(row[-1]) for row in self.conn.execute(sql, params)]

    def iter_all(self) -> Iterator[Row]:
        for row in self.conn.execute(f"SELECT {_SUMMARY_COLUMNS} FROM exchanges ORDER BY id"):
            yield _summary(row)


# -- row conversion -----------------------------------------------------------------------------
_NOT_EXTRA = frozenset((*COLUMNS, "ts", "level"))
# One encoder each, built once (json.dumps with options builds one per call).


def _row_values(record: Record) -> tuple[object, ...]:
    """The INSERT parameters of one record (on the writer thread)."""
    event = record.event
    columns = [event.get(name) for name in COLUMNS]
    extra = {k: v for k, v in event.items() if k not in _NOT_EXTRA}
    host = event.get("host")
    url = event.get("url")
    status = event.get("status")
    return (
        record.ts,
        *(_scalar(value) for value in columns),
        status // 100 if isinstance(status, int) else None,
        host[::-1] if isinstance(host, str) else None,
        _path(url) if isinstance(url, str) else None,
        jsontext.dumps(extra),
        _headers_json(record.request_headers),
        record.request_body,
        int(record.request_truncated),
        _headers_json(record.response_headers),
        record.response_body,
        int(record.response_truncated),
    )


def _scalar(value: object) -> object:
    if value is None or isinstance(value, str | int | float):
        return value
    return json.dumps(value, default=str)


def _headers_json(headers: list[tuple[str, str]] | None) -> str | None:
    return None if headers is None else jsontext.dumps(headers)


def _path(url: str) -> str:
    """The path of a URL without query (``--path`` globs match it); '' for CONNECT targets."""
    _, sep, rest = url.partition("://")
    if not sep:
        return ""
    slash = rest.find("/")
    if slash < 0:
        return "/"
    return rest[slash:].split("?", 1)[0].split("#", 1)[0]


def _event(row: Sequence[Any]) -> tuple[int, float, dict[str, Any]]:
    row_id, ts = row[0], row[1]
    values = dict(zip(COLUMNS, row[2 : 2 + len(COLUMNS)], strict=True))
    try:
        extra = json.loads(row[2 + len(COLUMNS)])
    except (TypeError, ValueError):
        extra = {}
    merged = values | extra
    # The documented order first (as in the log line), then anything newer.
    ordered = {k: merged[k] for k in EXCHANGE_FIELDS if k in merged}
    ordered |= {k: v for k, v in merged.items() if k not in ordered}
    # Rows are redacted when written; this covers rows an older hookwall wrote with fewer rules.
    return int(row_id), float(ts), redact_event(ordered)


def _summary(row: Sequence[Any]) -> Row:
    row_id, ts, event = _event(row)
    return Row(row_id, ts, event)


def _full(row: Sequence[Any]) -> Row:
    row_id, ts, event = _event(row)
    base = 3 + len(COLUMNS)
    return Row(
        row_id,
        ts,
        event,
        request_headers=_load_headers(row[base]),
        request_body=row[base + 1],
        request_truncated=bool(row[base + 2]),
        response_headers=_load_headers(row[base + 3]),
        response_body=row[base + 4],
        response_truncated=bool(row[base + 5]),
    )


def _load_headers(text: str | None) -> list[tuple[str, str]] | None:
    if text is None:
        return None
    try:
        return redact_headers((str(name), str(value)) for name, value in json.loads(text))
    except (TypeError, ValueError):
        return None
