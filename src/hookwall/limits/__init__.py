"""Flood control per destination: one slow, flooded or failing receiver never hurts another.

The proxy calls ``slot = await limiter.acquire(key, config)`` before sending upstream, then
``limiter.report(key, outcome, ...)`` and ``slot.release()`` when the exchange is over.
"""

from hookwall.limits.gate import DestinationLimiter
from hookwall.limits.keygate import Slot
from hookwall.limits.settings import LimitConfig
from hookwall.limits.verdicts import EventSink, Outcome, Rejected
from hookwall.retries.retryafter import parse_retry_after

__all__ = [
    "DestinationLimiter",
    "EventSink",
    "LimitConfig",
    "Outcome",
    "Rejected",
    "Slot",
    "parse_retry_after",
]
