"""The ``exchange`` event: exactly one per HTTP exchange, allowed or denied (README.md, "Log
events"), the record operators query when a webhook went missing.

``ExchangeEvent`` holds its documented fields, typed, in their documented order. ExchangeLog
(``deliveries/addons/exchangelog.py``) builds one from the flow and its state; ``fields()``
turns it into the mapping that becomes the JSON log line and the delivery store's row. The
helpers below are the pure parts of building it (durations, URLs, report-only verdicts, the
printable text of a hostile request line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, NotRequired, TypedDict


class RedirectRecord(TypedDict):
    """What Redirects did with a receiver's 3xx (the event's ``redirect``)."""

    status: int
    location: str | None
    action: Literal["followed", "passed", "denied"]
    hops: NotRequired[int]  # how many were followed, once the chain ended in an answer


@dataclass(slots=True)
class ExchangeEvent:
    """One exchange, as logged and stored. A field nothing knew about stays None (a refused
    request head has no rule, a refused TLS handshake no status)."""

    request_id: str | None = None
    sender: str | None = None
    attempted_sender: str | None = None  # a configured name that failed (never a token)
    client: str | None = None  # the sender's address, "ip:port"
    method: str | None = None
    url: str | None = None
    host: str | None = None
    port: int | None = None
    rule: str | None = None
    resolved_ips: list[str] | None = None
    peer_ip: str | None = None  # the receiver's address this exchange was sent to
    decision: Literal["allow", "deny"] | None = None
    reason: str | None = None  # the denial's code (core/denials.py), as sent
    would_deny: str | None = None  # report-only: the first code that would have refused
    would_deny_message: str | None = None
    status: int | None = None  # what the sender got (the receiver's own when hookwall relayed)
    error: str | None = None  # what the sender was told, or the low-level failure
    webhook_id: str | None = None
    signed: str | bool | None = None  # the scheme's name, "sender", or False
    key_ids: list[str] | None = None
    redirect: RedirectRecord | None = None
    hop: int | None = None
    attempt: int | None = None
    replay_of: str | None = None
    tls: Literal["upgrade", "passthrough"] | None = None
    queue_ms: float | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    request_bytes: int | None = None
    response_bytes: int | None = None

    def fields(self) -> dict[str, Any]:
        """The log line's and the store row's fields, in the documented order."""
        return {name: getattr(self, name) for name in EVENT_FIELDS}


EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ExchangeEvent))


def ms(start: float | None, end: float | None) -> float | None:
    """Milliseconds from ``start`` to ``end`` (timestamps in seconds), None unless both."""
    if start is None or end is None:
        return None
    return round(max(0.0, end - start) * 1000, 3)


def safe_url(url: str) -> str:
    """The URL without userinfo (mitmproxy never keeps it, but be explicit)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def peer(address: Any) -> str | None:
    """``ip:port`` of a socket address, None without one."""
    return f"{address[0]}:{address[1]}" if address else None


def would_deny(verdicts: Sequence[tuple[str, str]]) -> tuple[str | None, str | None]:
    """Report-only access verdicts (``enforce: false``): the first code, and every message."""
    if not verdicts:
        return None, None
    return str(verdicts[0][0]), "; ".join(message for _, message in verdicts) or None


def printable(raw: bytes, limit: int = 200) -> str:
    """Hostile bytes from a refused head, printable and bounded, for the log and the store."""
    return raw[:limit].decode("ascii", "backslashreplace").encode("unicode_escape").decode()


def request_line_parts(start_line: bytes) -> tuple[str | None, str | None]:
    """The method and target of a (possibly incomplete or hostile) request line."""
    method, _, rest = start_line.rstrip(b"\r").partition(b" ")
    target = rest.rpartition(b" ")[0] or rest
    return printable(method) or None, printable(target) or None
