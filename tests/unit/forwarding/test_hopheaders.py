"""Which request headers stop at the proxy (pure function; the proxy test covers the wiring),
and which receiver response headers never reach the sender."""

from __future__ import annotations

import pytest
from mitmproxy.test import tflow

from hookwall.core.denials import Denial, Reason
from hookwall.core.headers import headers_to_strip, hookwall_headers
from hookwall.flow.respond import deny
from hookwall.flow.state import start_state
from hookwall.forwarding.addons.hopheaders import HopHeaders
from hookwall.policy import load_default_policy


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
    """mitmproxy reads Connection: close from the header HopHeaders strips; the state keeps it."""
    flow = tflow.tflow()
    state = start_state(flow, load_default_policy(), None)
    if value is not None:
        flow.request.headers["Connection"] = value
    HopHeaders().requestheaders(flow)
    assert "connection" not in flow.request.headers
    assert state.closes_connection == ("sender-asked" if closes else None)


def test_every_hookwall_header_of_a_receiver_response_is_dropped() -> None:
    names = ["X-Hookwall-Reason", "x-HOOKWALL-request-id", "X-Hookwall-Future", "X-Hookwallish"]
    assert hookwall_headers(names) == {
        "x-hookwall-reason",
        "x-hookwall-request-id",
        "x-hookwall-future",
    }
    flow = tflow.tflow(resp=True)
    assert flow.response is not None
    flow.response.headers["X-Hookwall-Reason"] = "address-blocked"
    flow.response.headers["x-hookwall-redirect-location"] = "http://evil.test/"
    flow.response.headers["X-Other"] = "kept"
    HopHeaders().responseheaders(flow)
    assert [k.lower() for k in flow.response.headers if k.lower().startswith("x-")] == ["x-other"]
    # hookwall's own refusal, answered before any receiver was asked, keeps its headers
    refused = tflow.tflow()
    deny(
        refused, start_state(refused, load_default_policy(), None), Denial(Reason.HOST_DENIED, "no")
    )
    HopHeaders().responseheaders(refused)
    assert refused.response is not None
    assert refused.response.headers["X-Hookwall-Reason"] == "host-denied"
