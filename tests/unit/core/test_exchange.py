"""The neutral Exchange reads headers as HTTP does: any case, repeats joined."""

from __future__ import annotations

from hookwall.core.exchange import Exchange


def test_headers_are_read_in_any_case_and_repeats_join() -> None:
    exchange = Exchange(
        "POST",
        "http://a.test/",
        (("X-Tag", "a"), ("content-type", "text/plain"), ("x-tag", "b")),
    )
    assert exchange.header("x-TAG") == "a, b"
    assert exchange.header_values("X-Tag") == ["a", "b"]
    assert exchange.header("missing") is None and exchange.header_values("missing") == []
    assert exchange.has_header("Content-Type") and not exchange.has_header("content-length")
    assert exchange.header_names() == {"x-tag", "content-type"}
