"""parse_retry_after: both RFC 9110 forms, and everything else ignored rather than guessed."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime

import pytest

from hookwall.retries.retryafter import MAX_RETRY_AFTER, parse_retry_after

NOW = parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  7 ", 7.0),
        ("1.5", 1.5),  # not RFC delay-seconds, but some receivers send it
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),  # future date
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # now
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # past date: come back now
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Wed, 21 Oct 2015 09:30:00 +0200", 120.0),  # lenient: a zone other than GMT
        ("Wed, 21 Oct 2015 07:29:00 -0000", 60.0),  # "unknown zone" read as UTC
        ("99999999999", MAX_RETRY_AFTER),  # huge: clamped, still a float
        ("9" * 5000, MAX_RETRY_AFTER),  # beyond int()'s digit limit
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        (None, None),
        ("", None),
        ("   ", None),
        ("-5", None),
        ("-0.5", None),
        ("+5", None),
        ("soon", None),
        ("5 seconds", None),
        ("1e3", None),
        ("inf", None),
        ("nan", None),
        ("١٢", None),  # non-ASCII digits
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
        ("Wed, 21 Oct 2015", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_default_now_is_wall_clock() -> None:
    result = parse_retry_after(formatdate(time.time() + 3600, usegmt=True))
    assert result is not None
    assert 3590 <= result <= 3600
