"""The filters of ``hookwall logs``: parsing them, and turning them into an indexed SQL query
(the store) or a predicate (a JSON log file, ``--file``), with the same meaning both ways."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookwall.config.units import parse_duration

__all__ = [
    "Filters",
    "StatusFilter",
    "matches",
    "parse_status",
    "parse_time",
    "where_clause",
]

_WILDCARDS = re.compile(r"[*?\[]")
_STATUS_CLASS = re.compile(r"([1-5])xx")
_WEEK = re.compile(r"\s*(\d+(?:\.\d+)?)\s*w\s*")


@dataclass(frozen=True, slots=True)
class StatusFilter:
    """One ``--status`` value: an exact code, a class (low..high), or a decision."""

    low: int | None = None
    high: int | None = None
    decision: str | None = None  # "deny" / "allow"

    def matches(self, status: object, decision: object) -> bool:
        if self.decision is not None:
            return decision == self.decision
        return (
            isinstance(status, int)
            and self.low is not None
            and self.high is not None
            and (self.low <= status <= self.high)
        )


@dataclass(frozen=True, slots=True)
class Filters:
    host: str | None = None  # glob, e.g. "*.acme.com"
    sender: str | None = None
    status: tuple[StatusFilter, ...] = ()  # any of them
    reason: str | None = None
    webhook_id: str | None = None
    since: float | None = None  # Unix seconds, inclusive
    until: float | None = None  # Unix seconds, exclusive
    path: str | None = None  # glob over the URL path (no query)


def parse_status(text: str) -> tuple[StatusFilter, ...]:
    """'200', '4xx', '5xx', 'denied', 'allowed', or several joined by commas."""
    out: list[StatusFilter] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if item in ("denied", "deny"):
            out.append(StatusFilter(decision="deny"))
        elif item in ("allowed", "allow"):
            out.append(StatusFilter(decision="allow"))
        elif match := _STATUS_CLASS.fullmatch(item):
            base = int(match[1]) * 100
            out.append(StatusFilter(low=base, high=base + 99))
        elif item.isdigit() and 100 <= int(item) <= 599:
            out.append(StatusFilter(low=int(item), high=int(item)))
        else:
            raise ValueError(
                f"invalid status {raw.strip()!r}: use a code (200), a class (4xx, 5xx), "
                "denied or allowed; several with commas (5xx,denied)"
            )
    return tuple(out)


def parse_time(text: str, now: float) -> float:
    """Unix seconds from a relative age ('90s', '30m', '2h', '1d', '1w': that long ago) or an
    ISO 8601 date or time ('2026-11-28', '2026-11-28T22:15:00Z'; no zone means UTC)."""
    stripped = text.strip()
    if week := _WEEK.fullmatch(stripped):
        return now - float(week[1]) * 7 * 86400
    if stripped and stripped[0].isdigit() and not re.match(r"\d{4}-", stripped):
        try:
            return now - parse_duration(stripped)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(stripped.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use an age like 30m, 2h, 1d, or an ISO time like "
            "2026-11-28T22:15:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _next_prefix(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _host_clause(pattern: str) -> tuple[str, list[object]]:
    """Index-friendly SQL for a host glob: exact names and 'prefix*' use the host index,
    '*suffix' (the common '*.acme.com') uses the reversed-host index."""
    pattern = pattern.strip().lower().rstrip(".")
    wildcards = [m.start() for m in _WILDCARDS.finditer(pattern)]
    if not wildcards:
        return "host = ?", [pattern]
    if pattern.startswith("*") and not _WILDCARDS.search(pattern[1:]) and len(pattern) > 1:
        rev = pattern[1:][::-1]
        return (
            "(host_rev >= ? AND host_rev < ? AND host_rev GLOB ?)",
            [rev, _next_prefix(rev), rev + "*"],
        )
    if wildcards[0] > 0:
        prefix = pattern[: wildcards[0]]
        return "(host >= ? AND host < ? AND host GLOB ?)", [prefix, _next_prefix(prefix), pattern]
    return "host GLOB ?", [pattern]


def where_clause(filters: Filters) -> tuple[str, list[object]]:
    """A WHERE clause (never empty) and its parameters."""
    clauses: list[str] = []
    params: list[object] = []
    if filters.host:
        sql, values = _host_clause(filters.host)
        clauses.append(sql)
        params += values
    for column in ("sender", "reason", "webhook_id"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if filters.since is not None:
        clauses.append("ts >= ?")
        params.append(filters.since)
    if filters.until is not None:
        clauses.append("ts < ?")
        params.append(filters.until)
    if filters.path:
        clauses.append("path GLOB ?")
        params.append(filters.path)
    if filters.status:
        alternatives: list[str] = []
        for status in filters.status:
            if status.decision is not None:
                # A literal, not a parameter: lets SQLite see it can use a partial index.
                alternatives.append("decision = 'deny'" if status.decision == "deny" else
                                    "decision = 'allow'")  # fmt: skip
            elif status.low == status.high and status.low is not None:
                alternatives.append("(status_class = ? AND status = ?)")
                params += [status.low // 100, status.low]
            elif status.low is not None:
                alternatives.append("status_class = ?")
                params.append(status.low // 100)
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return (" AND ".join(clauses) or "1"), params


def matches(event: dict[str, Any], ts: float | None, filters: Filters) -> bool:
    """The same filters over one event read from a JSON log file."""
    if filters.host:
        host = str(event.get("host") or "")
        if not fnmatch.fnmatchcase(host, filters.host.strip().lower().rstrip(".")):
            return False
    for name in ("sender", "reason", "webhook_id"):
        wanted = getattr(filters, name)
        if wanted is not None and event.get(name) != wanted:
            return False
    if filters.since is not None and (ts is None or ts < filters.since):
        return False
    if filters.until is not None and (ts is None or ts >= filters.until):
        return False
    if filters.path:
        url = str(event.get("url") or "")
        _, sep, rest = url.partition("://")
        path = ("/" + rest.partition("/")[2]).split("?", 1)[0] if sep else ""
        if not fnmatch.fnmatchcase(path, filters.path):
            return False
    status, decision = event.get("status"), event.get("decision")
    return not filters.status or any(s.matches(status, decision) for s in filters.status)
