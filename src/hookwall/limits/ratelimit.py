"""A token bucket driven by an injected clock, so tests can move time by hand."""

from __future__ import annotations

__all__ = ["TokenBucket"]

# Float slack: a bucket refilled for exactly 1/rate seconds must yield its token.
_EPSILON = 1e-9


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity``; starts full."""

    __slots__ = ("_tokens", "_updated", "capacity", "rate")

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = float(capacity)
        self._updated = now

    def reconfigure(self, rate: float, capacity: int, now: float) -> None:
        """Apply a policy reload without handing out a fresh burst."""
        self._refill(now)
        self.rate = rate
        self.capacity = capacity
        self._tokens = min(self._tokens, float(capacity))

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(
                float(self.capacity), self._tokens + (now - self._updated) * self.rate
            )
        self._updated = max(self._updated, now)  # a clock that steps back refills nothing

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (no side effects beyond the refill)."""
        self._refill(now)
        return self._tokens

    def full(self, now: float) -> bool:
        """True when forgetting this bucket would hand out nothing extra."""
        return self.tokens(now) >= self.capacity - _EPSILON

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def wait_for(self, count: int, now: float) -> float:
        """Seconds until ``count`` tokens will have accumulated (ignoring the cap)."""
        missing = count - self.tokens(now)
        return 0.0 if missing <= _EPSILON else missing / self.rate
