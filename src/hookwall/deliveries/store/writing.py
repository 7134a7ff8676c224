# ruff: noqa: S608
"""Writing to the store: records inserted in batches, one transaction per batch.

A record becomes one row: the event's column fields, the derived columns the indexes need
(``status_class``, ``host_rev``, ``path``), the rest of the event as JSON in ``extra``, the
headers as JSON, the bodies (capped by ``logging.capture_body``) as BLOBs. Runs on the writer
thread (``writer.py``).

The INSERT text is built from constants only (column names, "?" placeholders); every value
is a bound parameter, hence the S608 exemption.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable

from hookwall.core import jsontext
from hookwall.deliveries.store.record import Record
from hookwall.deliveries.store.schema import COLUMNS

_INSERT = f"""INSERT INTO exchanges (
    ts, {", ".join(COLUMNS)}, status_class, host_rev, path, extra,
    request_headers, request_body, request_truncated,
    response_headers, response_body, response_truncated
) VALUES ({", ".join("?" * (len(COLUMNS) + 11))})"""

# Rows per INSERT statement; 32 rows x 24 columns stays under SQLite's historical limit of
# 999 parameters.
_CHUNKS = (32, 8, 2, 1)

# Event fields that are not copied into ``extra``: they have a column, or are not kept.
_NOT_EXTRA = frozenset((*COLUMNS, "ts", "level"))


@functools.cache
def _insert_rows(count: int) -> str:
    """``_INSERT`` for ``count`` rows at once."""
    head, _, values = _INSERT.rpartition(" VALUES ")
    return f"{head} VALUES {', '.join([values] * count)}"


class Writing:
    """The store's inserts (a part of :class:`~hookwall.deliveries.store.db.Store`)."""

    conn: sqlite3.Connection

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
