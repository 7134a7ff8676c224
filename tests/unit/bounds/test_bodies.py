"""Body caps, the pure part: what a request's body will take, and the refusals."""

from __future__ import annotations

import pytest

from hookwall.bounds.bodies import (
    content_length,
    expected_size,
    request_too_large,
    response_too_large,
)
from hookwall.core.denials import Reason
from hookwall.core.exchange import Exchange


def request(*headers: tuple[str, str]) -> Exchange:
    return Exchange("POST", "http://a.test/", headers)


@pytest.mark.parametrize(
    ("headers", "size"),
    [
        ((("Content-Length", "10"),), 10),
        ((("Transfer-Encoding", "gzip, Chunked"),), 1000),  # up to the cap
        ((), 0),  # no body to wait for
        ((("Content-Length", "10"), ("Content-Length", "10")), 0),  # "10, 10" is no number
    ],
)
def test_what_a_body_will_take_in_memory(headers: tuple[tuple[str, str], ...], size: int) -> None:
    assert expected_size(request(*headers), cap=1000) == size


def test_content_length() -> None:
    assert content_length("42") == 42
    assert content_length(None) is None and content_length("4 2") is None


def test_the_refusals_name_both_sizes() -> None:
    too_big = request_too_large(2048, 1024)
    assert too_big.reason is Reason.REQUEST_TOO_LARGE and too_big.status == 413
    assert "(2KiB)" in too_big.message and "(1KiB)" in too_big.message
    assert response_too_large(2048, 1024).reason is Reason.RESPONSE_TOO_LARGE
