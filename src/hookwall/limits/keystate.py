"""The numbers one destination key is admitted by, and their arithmetic: requests in flight,
the token bucket, the circuit breaker, the receiver's pause, under the latest config.

No loop, no waiters, no events: ``keygate`` drives this state, ``admission`` reads it.
"""

from __future__ import annotations

from hookwall.limits.circuit import CircuitBreaker
from hookwall.limits.ratelimit import TokenBucket
from hookwall.limits.settings import LimitConfig

__all__ = ["PAUSE_STATUSES", "KeyState"]

# The receiver statuses whose Retry-After pauses the destination for every sender.
PAUSE_STATUSES = frozenset({429, 503})


class KeyState:
    __slots__ = ("bucket", "circuit", "config", "in_flight", "key", "paused_until")

    def __init__(self, key: str, config: LimitConfig, now: float) -> None:
        self.key = key
        self.config = config
        self.in_flight = 0
        self.bucket: TokenBucket | None = None
        self.circuit = CircuitBreaker()
        self.paused_until = 0.0
        self.configure(config, now)

    def configure(self, config: LimitConfig, now: float) -> None:
        """Apply the config of the latest acquire (a policy reload takes effect at once)."""
        self.config = config
        size = config.bucket_size
        if config.rate is None or size is None:
            self.bucket = None
        elif self.bucket is None:
            self.bucket = TokenBucket(config.rate, size, now)
        elif self.bucket.rate != config.rate or self.bucket.capacity != size:
            self.bucket.reconfigure(config.rate, size, now)

    def has_room(self) -> bool:
        """A request may go in flight as far as the concurrency cap is concerned."""
        return self.in_flight < self.config.concurrency

    def pause_left(self, now: float) -> float:
        return max(0.0, self.paused_until - now)

    def token_wait(self, count: int, now: float) -> float:
        """Seconds until ``count`` tokens will be there (0 without a rate limit)."""
        return 0.0 if self.bucket is None else self.bucket.wait_for(count, now)

    def take_token(self, now: float) -> bool:
        """Take a token if the rate limit has one (always True without a rate limit)."""
        return self.bucket is None or self.bucket.take(now)

    def pause_earned(self, status: int | None, retry_after: float | None) -> float | None:
        """The pause a receiver's answer asks for: 429/503 with a positive Retry-After,
        clamped to ``retry_after_max``; None for any other answer."""
        if status in PAUSE_STATUSES and retry_after is not None and retry_after > 0:
            return min(retry_after, self.config.retry_after_max)
        return None

    def busy_retry_after(self, now: float) -> float:
        """When to come back after queue-full/queue-timeout: the pause's end if the key is
        paused, else the queue timeout, by which every request now queued is gone."""
        pause_left = self.pause_left(now)
        return pause_left if pause_left > 0 else self.config.queue_timeout

    def is_probe(self, probe_gen: int | None) -> bool:
        """``probe_gen`` names the probe of the circuit's current half-open period."""
        circuit = self.circuit
        return probe_gen == circuit.generation and circuit.state == "half-open"

    def idle(self, now: float) -> bool:
        """Forgetting these numbers changes nothing a sender could notice (or exploit)."""
        return (
            self.in_flight == 0
            and self.circuit.state == "closed"
            and self.paused_until <= now
            and (self.bucket is None or self.bucket.full(now))
        )

    def row(self, now: float, queued: int) -> dict[str, object]:
        """The key as ``snapshot`` shows it to operators."""
        row: dict[str, object] = {
            "key": self.key,
            "in_flight": self.in_flight,
            "queued": queued,
            "paused_for_s": round(self.pause_left(now), 3),
            "circuit": self.circuit.display(now),
            "failures": self.circuit.failures,
        }
        if self.bucket is not None:
            row["tokens"] = round(self.bucket.tokens(now), 3)
        return row
