"""Per-destination circuit breaker state: closed -> open -> half-open -> closed | open.

A receiver that keeps failing costs every sender a full timeout per request; opening the circuit
turns that into an immediate refusal until a single probe shows the receiver is back.
"""

from __future__ import annotations

from typing import Literal

from hookwall.limits.verdicts import Outcome

__all__ = ["CircuitBreaker", "CircuitState", "Transition"]

CircuitState = Literal["closed", "open", "half-open"]
# What a reported outcome calls for: "open" (again), or close it, for the reason named.
Transition = Literal["open", "disabled", "probe-succeeded"]


class CircuitBreaker:
    """The state machine only; the limiter decides who may pass, makes the transitions
    ``record`` calls for and reports them.

    ``generation`` changes on every transition, so a slot can tell whether it is still the probe
    of the current half-open period.
    """

    __slots__ = ("failures", "generation", "open_until", "probe_out", "state")

    def __init__(self) -> None:
        self.state: CircuitState = "closed"
        self.failures = 0  # consecutive failures while closed
        self.open_until = 0.0
        self.generation = 0
        self.probe_out = False  # half-open: the single probe is queued or in flight

    def open(self, now: float, cooloff: float) -> None:
        self.state = "open"
        self.open_until = now + cooloff
        self.probe_out = False
        self.generation += 1

    def half_open(self) -> None:
        self.state = "half-open"
        self.probe_out = False
        self.generation += 1

    def close(self) -> None:
        self.state = "closed"
        self.failures = 0
        self.probe_out = False
        self.generation += 1

    def record(self, outcome: Outcome, threshold: int) -> Transition | None:
        """Count one exchange's outcome; say which transition it calls for, if any.

        ``threshold``: consecutive failures that open it (0: the breaker is disabled, and an
        open one closes). A neutral outcome neither counts nor resets. Outcomes while open are
        late replies to requests sent before it opened: the cool-off stands. While half-open,
        any success or failure decides.
        """
        if threshold == 0:
            self.failures = 0
            return None if self.state == "closed" else "disabled"
        if outcome == "neutral" or self.state == "open":
            return None
        if outcome == "success":
            self.failures = 0
            return "probe-succeeded" if self.state == "half-open" else None
        self.failures += 1
        if self.state == "half-open" or self.failures >= threshold:
            return "open"
        return None

    def cooloff_left(self, now: float) -> float:
        return max(0.0, self.open_until - now) if self.state == "open" else 0.0

    def display(self, now: float) -> CircuitState:
        """The state as an operator should read it: open with the cool-off over is half-open."""
        if self.state == "open" and now >= self.open_until:
            return "half-open"
        return self.state
