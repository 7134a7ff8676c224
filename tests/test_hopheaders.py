"""Which request headers stop at the proxy (pure function; the proxy test covers the wiring)."""

from __future__ import annotations

import pytest

from hookwall.addons.hopheaders import headers_to_strip


@pytest.mark.parametrize(
    ("names", "connection", "expected"),
    [
        (["Proxy-Authorization", "Content-Type"], [], {"proxy-authorization"}),
        (
            ["Proxy-Connection", "Keep-Alive", "TE", "Upgrade"],
            [],
            {"proxy-connection", "keep-alive", "te", "upgrade"},
        ),
        (["Connection", "X-Hop", "X-Keep"], ["close, X-Hop"], {"connection", "x-hop"}),
        (
            ["X-Hookwall-Upgrade", "X-Hookwall-Anything"],
            [],
            {"x-hookwall-upgrade", "x-hookwall-anything"},
        ),
        # A sender cannot strip framing or routing by listing them in Connection.
        (
            ["Connection", "Content-Length", "Host", "Transfer-Encoding"],
            ["content-length, host, transfer-encoding"],
            {"connection"},
        ),
        (["Authorization", "Cookie"], [], set()),
    ],
)
def test_headers_to_strip(names: list[str], connection: list[str], expected: set[str]) -> None:
    assert headers_to_strip(names, connection) == expected
