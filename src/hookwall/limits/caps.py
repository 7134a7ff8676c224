"""Per-destination flood-control settings, as the policy hands them to the limiter.

Frozen so one object can be shared by every request of a policy generation; the limiter always
uses the config passed with the latest ``acquire``, so a policy reload takes effect at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LimitConfig"]


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """Limits for one destination key (see ``DestinationLimiter`` for the semantics)."""

    concurrency: int = 8  # max requests in flight per key
    queue: int = 100  # max requests waiting per key (0: no queue, excess rejected at once)
    queue_timeout: float = 10.0  # max seconds a request waits
    rate: float | None = None  # sustained requests/second per key; None = unlimited
    burst: int | None = None  # bucket size; None -> max(1, ceil(rate))
    retry_after_max: float = 300.0  # clamp for receivers' Retry-After pauses
    circuit_failures: int = 5  # consecutive failures that open the circuit; 0 disables it
    circuit_cooloff: float = 30.0  # seconds open before one probe is let through (half-open)

    def __post_init__(self) -> None:
        """Fail at policy load, not with a confusing stall under load."""
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.queue < 0:
            raise ValueError("queue must not be negative")
        if not math.isfinite(self.queue_timeout) or self.queue_timeout < 0:
            raise ValueError("queue_timeout must be a finite number of seconds >= 0")
        if self.rate is not None and (not math.isfinite(self.rate) or self.rate <= 0):
            raise ValueError("rate must be a positive number of requests per second")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not math.isfinite(self.retry_after_max) or self.retry_after_max < 0:
            raise ValueError("retry_after_max must be a finite number of seconds >= 0")
        if self.circuit_failures < 0:
            raise ValueError("circuit_failures must not be negative")
        if not math.isfinite(self.circuit_cooloff) or self.circuit_cooloff < 0:
            raise ValueError("circuit_cooloff must be a finite number of seconds >= 0")

    @property
    def bucket_size(self) -> int | None:
        """The token bucket's capacity, or None when the rate is unlimited."""
        if self.rate is None:
            return None
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate))
