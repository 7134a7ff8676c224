"""The head caps' pure judgement (the proxy's refusals: tests/integration/test_hostile.py)."""

from __future__ import annotations

import pytest

from hookwall.mitm.http1guard import head_problem


@pytest.mark.parametrize(
    ("buffered", "problem"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", None),  # incomplete, within the caps
        (b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 3 + b"\r\n", None),  # exactly 3 fields
        (b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 4 + b"\r\n", "more than 3 header fields"),
        (b"GET / HTTP/1.1\r\n" + b"X: v\r\n" * 4, "more than 3 header fields"),  # before the end
        (b"GET / HTTP/1.1\nX: v\nX: v\nX: v\nX: v\n\n", "more than 3 header fields"),  # bare LF
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 200, "more than 100 bytes"),  # never ends
        (b"GET / HTTP/1.1\r\nX: v\r\n\r\n" + b"b" * 500, None),  # the body does not count
        (b"\r\n\r\n" * 3 + b"GET / HTTP/1.1\r\n", None),  # empty lines before a head
        (b"\r\n" * 60, "more than 100 bytes"),  # nothing but empty lines, forever
    ],
)
def test_head_problem(buffered: bytes, problem: str | None) -> None:
    assert head_problem(buffered, max_bytes=100, max_fields=3) == problem
