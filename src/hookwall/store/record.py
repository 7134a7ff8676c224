"""One stored delivery: the exchange event plus headers and (capped) bodies, secrets removed.

Built on the proxy's event loop from plain values (no mitmproxy types), so it is cheap and
testable; everything that touches disk happens later, on the writer thread. Redaction happens
here, before a record is queued: no credential or signature value ever reaches the writer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

REDACTED = "[redacted]"

# Credentials and signatures: the value is replaced, the name is kept (it shows the header
# was there). Lower-case names.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "webhook-signature",
        "svix-signature",
        "stripe-signature",
        "x-hub-signature",
        "x-hub-signature-256",
    }
)
# Header names that say "secret" whatever the vendor: over-redacting is the safe mistake.
_SECRET_NAME = re.compile(
    r"signature|token|secret|passw|api-?key|auth|cookie|credential|session", re.IGNORECASE
)
# Headers a signing scheme owns that carry no secret: the event id and the timestamp.
_PUBLIC_OWNED = re.compile(r"(^|-)(id|timestamp)$", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)  # runs on the event loop for every header: names repeat
def _secret_name(lower: str) -> bool:
    return (
        lower in SECRET_HEADERS
        or lower.startswith("x-hub-signature")
        or bool(_SECRET_NAME.search(lower))
    )


def is_secret_header(name: str, owned: Iterable[str] = ()) -> bool:
    """True for credential and signature headers, and for the signature headers a
    destination's signing scheme writes (``owned``: lower-case names)."""
    lower = name.lower()
    return _secret_name(lower) or (lower in owned and not _PUBLIC_OWNED.search(lower))


def redact_headers(
    headers: Iterable[tuple[str, str]], owned: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The headers in order, with every secret value replaced by ``[redacted]``."""
    owned_set = frozenset(name.lower() for name in owned)
    return [
        (name, REDACTED if is_secret_header(name, owned_set) else value) for name, value in headers
    ]


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
) -> Record:
    """A redacted, capped record of one exchange."""
    owned = tuple(owned_headers)
    request, request_cut = capture(request_body, capture_body)
    response, response_cut = capture(response_body, capture_body)
    return Record(
        ts=ts,
        event=dict(event),
        request_headers=None if request_headers is None else redact_headers(request_headers, owned),
        request_body=request,
        request_truncated=request_cut,
        response_headers=None
        if response_headers is None
        else redact_headers(response_headers, owned),
        response_body=response,
        response_truncated=response_cut,
    )
