"""Proxy-side retries: the pure arithmetic (no I/O); the policy values are ``retries.settings``.

A destination may ask hookwall to retry a failed delivery itself (``retries:`` in the policy).
Waits are exponential with full jitter (AWS's "full jitter": uniform in ``[0, min(cap,
base * 2**(n-1))]``), so senders that failed together do not come back together.
"""

from __future__ import annotations

import random

from hookwall.retries.settings import RetryOn, RetrySettings

__all__ = ["CONNECT_REASONS", "TIMEOUT_REASONS", "RetrySettings", "backoff", "retriable"]

# Our own denial reasons that mean "the receiver could not be reached" / "did not answer in time".
CONNECT_REASONS = frozenset({"upstream-error", "connect-timeout"})
TIMEOUT_REASONS = frozenset({"response-timeout"})


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry): full jitter."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 62))
    return (rng or random).uniform(0.0, max(0.0, ceiling))


def retriable(status: int, reason: str | None, on: tuple[RetryOn, ...]) -> bool:
    """Whether an outcome is worth another try. ``reason`` is hookwall's own denial reason
    (``X-Hookwall-Reason``) when hookwall answered; any other denial (policy, queue, circuit)
    is never retried: the receiver was not even asked."""
    if reason is not None:
        if reason in CONNECT_REASONS:
            return "connect-error" in on
        if reason in TIMEOUT_REASONS:
            return "timeout" in on
        return False
    return status in on
