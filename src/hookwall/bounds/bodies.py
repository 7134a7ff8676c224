"""Per-destination caps on message bodies, the pure part: how big a body says it is, how much
memory a request's body will take, and the refusals when one is too large.

A request is judged on its ``Content-Length`` before its body is read, then on the bytes that
arrived; a response likewise (``BodyCaps`` applies these to the flow).
"""

from __future__ import annotations

from hookwall.config.units import format_size
from hookwall.core.denials import Denial, Reason
from hookwall.core.exchange import Exchange


def content_length(value: str | None) -> int | None:
    """A ``Content-Length`` value as a number, None when absent or not one number."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def expected_size(request: Exchange, cap: int) -> int:
    """What a request's body will take in memory: its Content-Length; a chunked one, up to
    the destination's cap; without either, nothing."""
    declared = content_length(request.header("content-length"))
    if declared is not None:
        return declared
    chunked = "chunked" in (request.header("transfer-encoding") or "").lower()
    return cap if chunked else 0


def request_too_large(size: int, cap: int) -> Denial:
    return Denial(
        Reason.REQUEST_TOO_LARGE,
        f"the request body ({format_size(size)}) is larger than this destination accepts "
        f"({format_size(cap)})",
    )


def response_too_large(size: int, cap: int) -> Denial:
    return Denial(
        Reason.RESPONSE_TOO_LARGE,
        f"the receiver's response ({format_size(size)}) is larger than allowed "
        f"({format_size(cap)})",
    )
