"""Parse a receiver's ``Retry-After`` header (RFC 9110, section 10.2.3).

Receivers that are flooded say when to come back; honouring that is the cheapest way not to make
their outage worse. Anything we cannot read is ignored rather than guessed at.
"""

from __future__ import annotations

import re
import time
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RETRY_AFTER", "parse_retry_after"]

# Larger values are reported as this, so callers can still do arithmetic (and clamp) safely.
MAX_RETRY_AFTER = float(2**31)

# RFC 9110 delay-seconds is 1*DIGIT; a fraction is tolerated, as some receivers send "1.5".
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait (>= 0), or None if the header is absent, garbage or negative.

    ``value`` is delay-seconds ("120") or an HTTP-date; a date in the past means 0. ``now`` is
    wall-clock epoch seconds (default ``time.time()``), only used for dates.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        if len(text.partition(".")[0]) > 10:  # also keeps int() off its digit-count limit
            return MAX_RETRY_AFTER
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" (or no zone): RFC 5322 says UTC, origin unknown
        when = when.replace(tzinfo=UTC)
    try:
        epoch = when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
    delay = epoch - (time.time() if now is None else now)
    return min(max(0.0, delay), MAX_RETRY_AFTER)
