# ruff: noqa: S608
"""Reading the store: the queries of ``hookwall logs`` (and ``replay``, ...) and the bench.

A row is read back as the event it was logged as (its columns and ``extra`` merged, in the
documented field order), with the captured headers and bodies when one exchange is asked for
in full. Rows are redacted again on the way out, for rows an older hookwall wrote with fewer
rules.

SQL text here is built from constants only (column names, int limits, the ``WHERE`` clause
of ``query.where_clause``); every value is a bound parameter, hence the S608 exemption.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hookwall.deliveries.logs import EXCHANGE_FIELDS
from hookwall.deliveries.redaction import redact_event, redact_headers
from hookwall.deliveries.store.query import Filters, where_clause
from hookwall.deliveries.store.schema import COLUMNS

_SUMMARY_COLUMNS = f"id, ts, {', '.join(COLUMNS)}, extra"
_ALL_COLUMNS = (
    f"{_SUMMARY_COLUMNS}, request_headers, request_body, request_truncated, "
    "response_headers, response_body, response_truncated"
)


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


class Reading:
    """The store's queries (a part of :class:`~hookwall.deliveries.store.db.Store`)."""

    conn: sqlite3.Connection

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
