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


@pytest.mark.parametrize(
    ("value", "closes"),
    [("close", True), ("X-Hop, Close", True), ("keep-alive", False), (None, False)],
)
def test_a_sender_asking_to_close_gets_its_connection_closed(
    value: str | None, closes: bool
) -> None:
    """mitmproxy reads Connection: close from the header HopHeaders strips; the flag keeps it."""
    from mitmproxy.test import tflow

    from hookwall.addons.hopheaders import HopHeaders
    from hookwall.addons.lifecycle import CLOSE_AFTER

    flow = tflow.tflow()
    if value is not None:
        flow.request.headers["Connection"] = value
    HopHeaders().requestheaders(flow)
    assert "connection" not in flow.request.headers
    assert bool(flow.metadata.get(CLOSE_AFTER)) is closes
