"""The words every limiter shares: the outcome a caller reports, why a request is refused, and
the refusal itself, with its Retry-After and the message the sender reads.

The local limiter (``gate``) and the Redis one (``redis_backend``) build every refusal here, so a
sender gets the same answer whichever of them keeps the state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from hookwall.core.denials import Reason

__all__ = [
    "HALF_OPEN_RETRY_AFTER",
    "EventSink",
    "Outcome",
    "Rejected",
    "circuit_open",
    "limits_unavailable",
    "lost_place",
    "paused",
    "paused_past_deadline",
    "probing",
    "queue_full",
    "rate_limited",
    "waited_too_long",
    "whole_seconds",
]

Outcome = Literal["success", "failure", "neutral"]
# (key, event, fields): circuit transitions and pauses, for the log.
EventSink = Callable[[str, str, dict[str, object]], None]

# Half-open: how soon others should come back; the probe's verdict usually takes about that.
HALF_OPEN_RETRY_AFTER = 1
_EPSILON = 1e-9


def whole_seconds(seconds: float) -> int:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    if not math.isfinite(seconds):
        return 2**31
    return max(1, math.ceil(seconds - _EPSILON))


class Rejected(Exception):
    """The request was not admitted, for ``reason`` (a denial code: circuit-open, queue-full,
    queue-timeout, rate-limited or limits-unavailable)."""

    def __init__(self, reason: Reason, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.retry_after: int = whole_seconds(retry_after)
        self.message: str = message

    def __repr__(self) -> str:
        return f"Rejected({self.reason!r}, retry_after={self.retry_after})"


# -- the refusals, one per situation ------------------------------------------------------------


def circuit_open(key: str, retry_after: float) -> Rejected:
    """The circuit is open (or opened while the request waited): come back after the cool-off."""
    return Rejected(
        Reason.CIRCUIT_OPEN,
        retry_after,
        f"Deliveries to {key} keep failing; hookwall pauses them for a while.",
    )


def probing(key: str) -> Rejected:
    """Half-open, and another request is the single probe."""
    return Rejected(
        Reason.CIRCUIT_OPEN,
        HALF_OPEN_RETRY_AFTER,
        f"Deliveries to {key} were failing; hookwall is testing it with one request.",
    )


def paused(key: str, pause_left: float) -> Rejected:
    """The receiver's pause outlasts the queue timeout: refused up front, not after a wait."""
    return Rejected(
        Reason.QUEUE_TIMEOUT,
        pause_left,
        f"{key} asked hookwall to slow down; it accepts requests again later.",
    )


def paused_past_deadline(key: str, pause: float) -> Rejected:
    """A pause that began while the request waited ends after its deadline."""
    return Rejected(
        Reason.QUEUE_TIMEOUT,
        pause,
        f"{key} asked hookwall to slow down for longer than a request may wait.",
    )


def rate_limited(key: str, token_wait: float) -> Rejected:
    """No token in time for this place in the queue; ``token_wait``: when there would be."""
    return Rejected(
        Reason.RATE_LIMITED,
        token_wait,
        f"Requests to {key} exceed its rate limit; try again later.",
    )


def queue_full(key: str, retry_after: float) -> Rejected:
    return Rejected(
        Reason.QUEUE_FULL,
        retry_after,
        f"Too many requests are already waiting for {key}; try again later.",
    )


def waited_too_long(key: str, retry_after: float) -> Rejected:
    """The queue timeout ran out before the request's turn came."""
    return Rejected(
        Reason.QUEUE_TIMEOUT,
        retry_after,
        f"{key} is busy; the request waited too long for its turn.",
    )


def lost_place(key: str, retry_after: float) -> Rejected:
    """Redis forgot the request's ticket (its replica stalled past the ticket lease)."""
    return Rejected(
        Reason.QUEUE_TIMEOUT,
        retry_after,
        f"{key} is busy; the request lost its place in the queue.",
    )


def limits_unavailable(retry_after: float) -> Rejected:
    """The shared limits store is down and ``on_backend_failure: refuse``."""
    return Rejected(
        Reason.LIMITS_UNAVAILABLE,
        retry_after,
        "hookwall cannot reach the shared limits store and is configured to refuse "
        "deliveries meanwhile; try again shortly.",
    )
