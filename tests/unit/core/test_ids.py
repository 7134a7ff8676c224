"""Request and message ids: unique, well-formed, and ordered by creation time."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from hookwall.core import ids
from hookwall.signing.schemes import is_valid_message_id


@pytest.mark.parametrize(
    ("make", "shape", "stamp"),
    [
        (ids.request_id, re.compile(r"req_[0-9a-f]{24}"), 4 + 12),
        (ids.message_id, re.compile(r"msg_[0-9A-Za-z]{24}"), 4 + 8),
    ],
)
def test_unique_well_formed_and_time_ordered(
    make: Callable[[], str], shape: re.Pattern[str], stamp: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    burst = [make() for _ in range(20_000)]  # many per millisecond
    assert len(set(burst)) == len(burst)
    assert all(shape.fullmatch(i) for i in burst)
    later = make()
    next_ms = ids._now_ms() + 1
    monkeypatch.setattr(ids, "_now_ms", lambda: next_ms)
    latest = make()
    assert max(burst)[:stamp] <= later[:stamp] < latest[:stamp]  # prefixes sort as time does


def test_message_ids_are_valid_standard_webhooks_ids() -> None:
    assert all(is_valid_message_id(ids.message_id()) for _ in range(1000))


def test_the_time_prefix_is_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_now_ms", lambda: 62**8 - 1)
    assert ids.message_id().startswith("msg_zzzzzzzz")
    monkeypatch.setattr(ids, "_now_ms", lambda: 0x0123456789AB)
    assert ids.request_id().startswith("req_0123456789ab")
