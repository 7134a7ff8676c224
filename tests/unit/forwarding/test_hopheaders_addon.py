"""HopHeaders in process, through mitmproxy's addon dispatch: what stops at the proxy on the
way in, what stops on the way out, and a sender's ``Connection: close`` kept although its
header is stripped. (The pure rules: tests/unit/forwarding/test_hopheaders.py.)"""

from __future__ import annotations

import pytest
from mitmproxy.proxy.server_hooks import ClientConnectedHook

from hookwall.core.denials import REASON_HEADER
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.forwarding.addons.hopheaders import HopHeaders
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.policy import load_default_policy
from tests.unit.support.flows import assert_refused, request_to, responded, runtime_for
from tests.unit.support.mitm import (
    HttpRequestHeadersHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
    run_hooks,
)


def test_hop_by_hop_and_hookwall_headers_never_reach_the_receiver() -> None:
    flow = request_to("127.0.0.2", 8080)
    sent = {
        "Proxy-Authorization": "Basic c2VjcmV0",
        "Proxy-Connection": "keep-alive",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Upgrade": "h2c",
        "Connection": "X-Private, keep-alive",
        "X-Private": "for the proxy",
        "X-Hookwall-Anything": "ours",
        "Authorization": "Bearer for-the-receiver",
    }
    for name, value in sent.items():
        flow.request.headers[name] = value
    run_hooks([HopHeaders()], HttpRequestHeadersHook(flow))
    assert sorted(flow.request.headers.keys()) == [
        "Authorization",
        "Content-Type",
        "Host",
        "content-length",
    ]


@pytest.mark.parametrize(("connection", "closes"), [("close", True), ("keep-alive", False)])
def test_a_sender_asking_to_close_gets_its_connection_closed(connection: str, closes: bool) -> None:
    lifecycle = Lifecycle(runtime_for(load_default_policy()), {})
    flow = request_to("127.0.0.2", 8080)
    flow.request.headers["Connection"] = connection
    run_hooks(
        [lifecycle, HopHeaders(), lifecycle.end],
        ClientConnectedHook(flow.client_conn),
        HttpRequestHeadersHook(flow),
        lambda: responded(flow),
        HttpResponseHook(flow),
    )
    assert "Connection" not in flow.request.headers  # stripped before forwarding
    assert flow.response is not None
    assert (flow.response.headers.get("Connection") == "close") is closes


def test_a_receiver_cannot_pose_as_hookwall() -> None:
    flow = request_to("127.0.0.2", 8080)
    response = responded(flow, 403).response
    assert response is not None
    response.headers[REASON_HEADER] = "address-blocked"
    response.headers["x-HOOKWALL-request-id"] = "req_forged"
    response.headers["X-Other"] = "kept"
    run_hooks([HopHeaders()], HttpResponseHeadersHook(flow))
    assert [name.lower() for name in response.headers if name.lower().startswith("x-")] == [
        "x-other"
    ]


def test_hookwalls_own_refusal_keeps_its_headers() -> None:
    runtime = runtime_for(load_default_policy())
    flow = request_to("127.0.0.1", 8080)  # refused by the guard: answered by hookwall
    run_hooks(
        [DestinationGuard(runtime), HopHeaders()],
        HttpRequestHeadersHook(flow),
        HttpResponseHeadersHook(flow),
    )
    assert_refused(flow, 403, "address-blocked")
