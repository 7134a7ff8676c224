"""One stored delivery: the exchange event plus headers and (capped) bodies, secrets removed.

Built on the proxy's event loop from plain values (no mitmproxy types), so it is cheap and
testable; everything that touches disk happens later, on the writer thread. Redaction happens
here, before a record is queued (the rules are ``deliveries/redaction.py``'s): no credential
or signature value ever reaches the writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hookwall.deliveries.redaction import BUILT_IN, REDACTED, Rules, redact_event, redact_headers

__all__ = ["REDACTED", "Record", "build_record", "capture", "redact_headers"]


def capture(body: bytes | None, cap: int) -> tuple[bytes | None, bool]:
    """(the first ``cap`` bytes or None when not captured, whether bytes were cut off).

    An empty body is always "captured" (there is nothing to lose); with ``cap`` 0 or no body
    seen (passthrough, refused before it was read) nothing is kept.
    """
    if body is None:
        return None, False
    if not body:
        return b"", False
    if cap <= 0:
        return None, False
    if len(body) > cap:
        return body[:cap], True
    return body, False


@dataclass(frozen=True, slots=True)
class Record:
    """What the writer inserts: one row of the ``exchanges`` table."""

    ts: float  # Unix seconds, when the exchange ended (the log line's ts)
    event: dict[str, Any]  # the exchange event, as logged
    request_headers: list[tuple[str, str]] | None = None
    request_body: bytes | None = None
    request_truncated: bool = False
    response_headers: list[tuple[str, str]] | None = None
    response_body: bytes | None = None
    response_truncated: bool = False


def build_record(
    ts: float,
    event: dict[str, Any],
    *,
    request_headers: Iterable[tuple[str, str]] | None,
    request_body: bytes | None,
    response_headers: Iterable[tuple[str, str]] | None,
    response_body: bytes | None,
    capture_body: int,
    owned_headers: Iterable[str] = (),
    rules: Rules = BUILT_IN,
) -> Record:
    """A redacted, capped record of one exchange (``hookwall.deliveries.redaction``: the URLs in the
    event too, although the event is normally redacted already, as it was logged)."""
    owned = tuple(owned_headers)
    request, request_cut = capture(request_body, capture_body)
    response, response_cut = capture(response_body, capture_body)
    return Record(
        ts=ts,
        event=redact_event(dict(event), rules),
        request_headers=None
        if request_headers is None
        else redact_headers(request_headers, rules, owned),
        request_body=request,
        request_truncated=request_cut,
        response_headers=None
        if response_headers is None
        else redact_headers(response_headers, rules, owned),
        response_body=response,
        response_truncated=response_cut,
    )
