"""Whether a request arriving at a destination key is admitted at once, queued, or refused up
front: the decision of ``DestinationLimiter.acquire`` once the circuit has let it through (the
Lua ``ACQUIRE`` script of ``redis_lua`` makes the same one in Redis).

* FIFO without barging: admitted at once only when nobody is queued for the key.
* Requests that cannot be served in time are refused now, not after a wasted wait: a pause
  that outlasts ``queue_timeout`` gives "queue-timeout" (retry_after = the rest of the pause),
  and a token the bucket cannot produce in time for this place in the queue gives
  "rate-limited" (retry_after = when it could).
* A full queue gives "queue-full", except with ``queue: 0`` when only the rate stood in the
  way ("rate-limited": the sender should slow down, not wait for others).
"""

from __future__ import annotations

from typing import Literal

from hookwall.limits import verdicts
from hookwall.limits.keystate import KeyState
from hookwall.limits.verdicts import Rejected

__all__ = ["Arrival", "arrive"]

Arrival = Literal["admit", "queue"]


def arrive(state: KeyState, queued: int, now: float) -> Arrival:
    """Admit (a token is taken), queue, or raise ``Rejected``; ``queued``: waiting now."""
    config = state.config
    pause_left = state.pause_left(now)
    if pause_left > config.queue_timeout:
        raise verdicts.paused(state.key, pause_left)
    token_wait = state.token_wait(queued + 1, now)
    if token_wait > config.queue_timeout:
        raise verdicts.rate_limited(state.key, token_wait)
    if queued == 0 and pause_left <= 0 and state.has_room() and state.take_token(now):
        return "admit"
    if queued >= config.queue:
        raise _no_place(state, now, pause_left, token_wait)
    return "queue"


def _no_place(state: KeyState, now: float, pause_left: float, token_wait: float) -> Rejected:
    if state.config.queue == 0 and pause_left <= 0 and state.has_room():
        return verdicts.rate_limited(state.key, token_wait)
    return verdicts.queue_full(state.key, state.busy_retry_after(now))
