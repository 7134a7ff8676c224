"""Refusals inside TLS, in process: a CONNECT the destination decision refuses is accepted
for an intercepted destination, every request inside is answered with the refusal (the
CONNECT's request id), nothing is ever connected upstream, and the refusal is one exchange
event whatever happens in the tunnel.

The pure part (``answered_at``: which refusals, which settings) first; then the chain a
CONNECT and the requests inside meet (Lifecycle, AccessControl, DestinationGuard,
FloodControl, ExchangeLog, ExchangeEnd), driven hook by hook. The real TLS handshake and
real clients are tests/integration/test_tls_refusals.py's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from mitmproxy import http
from mitmproxy.proxy.layers.tls import TlsFailedClientHook
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.proxy.server_hooks import (
    ClientConnectedHook,
    ClientDisconnectedHook,
    ServerConnectHook,
    ServerConnectionHookData,
)

from hookwall.access.addon import AccessControl
from hookwall.core.denials import Denial, Reason
from hookwall.deliveries.addons.exchangelog import ExchangeLog
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.destinations.decide import decide
from hookwall.destinations.refusals import INSIDE_TLS_REASONS, answered_at
from hookwall.flow.headrefusal import HeadRefusal
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.limits.addon import FloodControl
from hookwall.limits.gate import DestinationLimiter
from hookwall.policy import Policy
from tests.support.dnsserver import TestDnsServer
from tests.unit.support.flows import (
    REQUEST_ID_HEADER,
    assert_passed,
    assert_refused,
    basic,
    connect_to,
    inside,
    load,
    runtime_for,
    state,
)
from tests.unit.support.mitm import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHook,
    Step,
    run_hooks,
    tls_data,
)

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [denied.rf.test]
    action: deny
  - hosts: [closed.rf.test]
    action: deny
    connect_refusals: on-connect
  - hosts: [tunnel.rf.test]
    tls: passthrough
  - hosts: [narrow.rf.test]
    network: {ports: [443]}
"""
# After a reload, every name of the tests is allowed: a refused tunnel must stay refused.
RELOADED = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.0/8], ports: ["1-65535"]}
"""
WITH_SENDERS = """\
version: 1
unsafe: true
senders:
  billing:
    credentials: [env:RF_BILLING]
  other:
    credentials: [env:RF_OTHER]
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [scoped.rf.test]
    senders: [other]
"""
TOKENS = {"RF_BILLING": "billing-token-0123456789abcdef", "RF_OTHER": "other-token-0123456789abcd"}
RECORDS = {
    "ok.rf.test": "127.0.0.2",
    "loop.rf.test": "127.0.0.1",  # special-purpose: address-blocked
    "private.rf.test": "10.1.2.3",
    "tunnel.rf.test": "127.0.0.1",  # passthrough, and blocked
    "narrow.rf.test": "127.0.0.2",
    "scoped.rf.test": "127.0.0.2",
}
Event = MutableMapping[str, Any]


@pytest.fixture(scope="module")
def served(dns_server: TestDnsServer) -> TestDnsServer:
    for name, address in RECORDS.items():
        dns_server.add(name, address)
    return dns_server


@pytest.fixture
def runtime(tmp_path: Path, served: TestDnsServer) -> Runtime:
    runtime = runtime_for(load(tmp_path, POLICY), served.address)
    runtime.limiter = DestinationLimiter()
    return runtime


# -- where a refusal is answered (the pure part) -------------------------------------------------


def _decided(runtime: Runtime, host: str, port: int = 443, sender: str | None = None) -> Any:
    return asyncio.run(decide(host, port, runtime.policy, runtime.resolver, sender=sender))


@pytest.mark.parametrize(
    ("host", "port", "reason", "where"),
    [
        ("loop.rf.test", 443, "address-blocked", "inside-tls"),
        ("127.0.0.1", 443, "address-blocked", "inside-tls"),
        ("private.rf.test", 443, "address-blocked", "inside-tls"),
        ("denied.rf.test", 443, "host-denied", "inside-tls"),
        ("narrow.rf.test", 8443, "port-denied", "inside-tls"),
        ("nowhere.rf.test", 443, "dns-failed", "inside-tls"),
        ("a..b", 443, "invalid-host", "inside-tls"),  # no rule at all: the defaults'
        ("closed.rf.test", 443, "host-denied", "on-connect"),  # connect_refusals: on-connect
        ("tunnel.rf.test", 443, "address-blocked", "on-connect"),  # tls: passthrough
        ("ok.rf.test", 443, None, "on-connect"),  # allowed: nothing to answer
    ],
)
def test_which_refusals_are_answered_inside_tls(
    runtime: Runtime, host: str, port: int, reason: str | None, where: str
) -> None:
    decision = _decided(runtime, host, port)
    assert decision.reason == reason
    assert answered_at(decision, runtime.policy.defaults) == where


def test_a_refused_host_without_a_rule_follows_the_defaults(
    tmp_path: Path, served: TestDnsServer
) -> None:
    text = POLICY.replace("defaults:\n", "defaults:\n  connect_refusals: on-connect\n")
    runtime = runtime_for(load(tmp_path, text), served.address)
    decision = _decided(runtime, "loop.rf.test")
    assert decision.settings is not None and decision.settings.rule is None
    assert answered_at(decision, runtime.policy.defaults) == "on-connect"


@pytest.fixture
def with_senders(tmp_path: Path, served: TestDnsServer, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    for name, token in TOKENS.items():
        monkeypatch.setenv(name, token)
    runtime = runtime_for(load(tmp_path, WITH_SENDERS), served.address)
    runtime.limiter = DestinationLimiter()
    return runtime


def test_access_refusals_stay_on_the_connect(with_senders: Runtime) -> None:
    """sender-denied is about the sender, 407 is the proxy-auth protocol: neither is the
    destination decision's."""
    assert Reason.SENDER_DENIED not in INSIDE_TLS_REASONS
    assert Reason.AUTH_REQUIRED not in INSIDE_TLS_REASONS
    runtime = with_senders
    decision = _decided(runtime, "scoped.rf.test", sender="billing")
    assert decision.reason is Reason.SENDER_DENIED
    assert answered_at(decision, runtime.policy.defaults) == "on-connect"


# -- the chain: the CONNECT, the requests inside, the event ---------------------------------------


class Bench:
    """What a CONNECT and the requests inside its tunnel meet, up to their end; the events."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.guard = DestinationGuard(runtime)
        self.lifecycle = Lifecycle(runtime, self.guard.tunnels)
        self.log = ExchangeLog(self.guard.tunnels, self.lifecycle.connection_holds)
        self.lifecycle.on_abandoned.append(self.log.abandoned)  # as the pipeline wires it
        self.chain = [
            self.lifecycle,
            AccessControl(runtime, self.guard.tunnels),
            self.guard,
            FloodControl(runtime.limiter, self.lifecycle),
            self.log,
            self.lifecycle.end,
        ]

    def run(self, *steps: Step) -> list[Event]:
        with structlog.testing.capture_logs() as logs:
            run_hooks(self.chain, *steps)
        return [event for event in logs if event["event"] == "exchange"]

    def settled(self) -> None:
        """Nothing in flight, no slot ever taken, nothing left of the tunnel."""
        assert self.lifecycle.inflight == 0 and self.lifecycle.open == {}
        assert isinstance(self.runtime.limiter, DestinationLimiter)
        assert self.runtime.limiter.snapshot() == []  # no destination slot was ever asked for
        assert self.guard.tunnels == {}
        assert self.log._refused == {}


@pytest.fixture
def bench(runtime: Runtime) -> Bench:
    return Bench(runtime)


def opened(tunnel: http.HTTPFlow) -> list[Step]:
    """The sender connects and sends its CONNECT; mitmproxy accepts it when nothing answered."""
    return [
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        lambda: _accepted(tunnel),
        HttpConnectedHook(tunnel),
    ]


def _accepted(tunnel: http.HTTPFlow) -> None:
    assert tunnel.response is None, "answered on the CONNECT"
    tunnel.response = http.Response.make(200)  # what mitmproxy's handle_connect_finish does


def answered(request: http.HTTPFlow) -> list[Step]:
    return [HttpRequestHeadersHook(request), HttpRequestHook(request), HttpResponseHook(request)]


def closed(tunnel: http.HTTPFlow) -> Step:
    return ClientDisconnectedHook(tunnel.client_conn)


def may_connect(guard: DestinationGuard, flow: http.HTTPFlow, address: tuple[str, int]) -> bool:
    server = flow.server_conn
    server.address, server.error = address, None
    run_hooks([guard], ServerConnectHook(ServerConnectionHookData(server, flow.client_conn)))
    return server.error is None


@pytest.mark.parametrize(
    ("host", "port", "why"),
    [
        ("loop.rf.test", 443, "address-blocked"),
        ("10.1.2.3", 443, "address-blocked"),
        ("denied.rf.test", 443, "host-denied"),
        ("narrow.rf.test", 8443, "port-denied"),
        ("nowhere.rf.test", 443, "dns-failed"),
    ],
)
def test_the_first_request_inside_gets_the_refusal_and_the_connection_closes(
    bench: Bench, host: str, port: int, why: str
) -> None:
    tunnel = connect_to(host, port)
    request = inside(tunnel, host)
    (event,) = bench.run(*opened(tunnel), *answered(request), closed(tunnel))
    connect = state(tunnel)
    assert connect.denial is not None and connect.denial.reason == why  # its verdict is kept
    assert tunnel.request.host == host  # never rewritten to an address: nothing was approved
    inner = assert_refused(request, 403, why)
    assert inner.request_id == connect.request_id  # the id the CONNECT got
    assert request.response is not None
    assert request.response.headers[REQUEST_ID_HEADER] == connect.request_id
    assert request.response.headers["Connection"] == "close"
    assert inner.denial == connect.denial
    # the one event: the refused request, by name, with the CONNECT's id and reason
    assert (event["request_id"], event["reason"], event["status"]) == (
        connect.request_id,
        why,
        403,
    )
    assert (event["method"], event["decision"]) == ("POST", "deny")
    shown = host if port == 443 else f"{host}:{port}"
    assert event["url"] == f"https://{shown}/hook"
    bench.settled()


def test_nothing_is_ever_connected_upstream(bench: Bench) -> None:
    """The guard's last check refuses every address: no decision approved one (mitmproxy
    would connect only for a request it forwards, and it forwards none)."""
    tunnel = connect_to("127.0.0.1", 443)
    request = inside(tunnel, "127.0.0.1")
    bench.run(*opened(tunnel), *answered(request))
    assert_refused(request, 403, "address-blocked")
    for address in [("127.0.0.1", 443), ("127.0.0.2", 443)]:
        assert not may_connect(bench.guard, request, address)


def test_every_request_inside_gets_it_and_only_the_first_is_logged(bench: Bench) -> None:
    """Pipelined requests, one naming another host (its Host is not judged: the answer is
    the CONNECT's refusal), one after a reload that would allow the host now."""
    tunnel = connect_to("loop.rf.test", 443)
    first, other, late = (inside(tunnel, h) for h in ("loop.rf.test", "ok.rf.test", "x.test"))
    reloaded: list[Policy] = []

    def reload() -> None:
        reloaded.append(load(Path(bench.runtime.policy.sources[0]).parent, RELOADED, "r.yaml"))
        bench.runtime.policy = reloaded[0]

    events = bench.run(
        *opened(tunnel),
        *answered(first),
        *answered(other),
        reload,
        *answered(late),
        closed(tunnel),
    )
    connect = state(tunnel)
    for flow in (first, other, late):
        got = assert_refused(flow, 403, "address-blocked")
        assert got.request_id == connect.request_id
        assert got.policy is not bench.runtime.policy  # judged under the CONNECT's policy
    assert [e["request_id"] for e in events] == [connect.request_id]
    bench.settled()


@pytest.mark.parametrize("http_version", ["HTTP/1.0", "HTTP/1.1"])
def test_an_http_1_0_request_inside_gets_it_too(bench: Bench, http_version: str) -> None:
    tunnel = connect_to("loop.rf.test", 443)
    request = inside(tunnel, "loop.rf.test")
    request.request.http_version = http_version
    (event,) = bench.run(*opened(tunnel), *answered(request), closed(tunnel))
    assert_refused(request, 403, "address-blocked")
    assert event["status"] == 403
    bench.settled()


def test_a_sender_that_refuses_the_certificate_gets_one_event_with_the_refusal(
    bench: Bench,
) -> None:
    tunnel = connect_to("loop.rf.test", 443)
    data = tls_data(tunnel.client_conn, ("loop.rf.test", 443))
    data.conn = tunnel.client_conn
    tunnel.client_conn.error = "unknown ca"
    logged_before_the_end: list[int] = []
    events = bench.run(
        *opened(tunnel),
        TlsFailedClientHook(data),
        lambda: logged_before_the_end.append(len(bench.log._refused)),
        closed(tunnel),
    )
    (event,) = events
    connect = state(tunnel)
    assert (event["method"], event["reason"], event["request_id"]) == (
        "CONNECT",
        "address-blocked",
        connect.request_id,
    )
    assert event["status"] is None  # the sender never read an answer
    assert connect.denial is not None and event["error"].startswith(connect.denial.message)
    assert "did not accept hookwall's certificate" in event["error"]
    assert "connect_refusals: on-connect" in event["error"] and "unknown ca" in event["error"]
    assert logged_before_the_end == [1]  # not tls-failed as its own event
    bench.settled()


def test_a_sender_that_sends_nothing_gets_one_event_when_its_connection_ends(
    bench: Bench,
) -> None:
    """(The connection is bounded by ConnectionGuard's handshake deadline: head_timeout for
    the handshake and the first request; tests/unit/bounds/test_connections.py.)"""
    tunnel = connect_to("denied.rf.test", 443)
    assert bench.run(*opened(tunnel)) == []  # not yet: a request may still come
    (event,) = bench.run(closed(tunnel))
    assert (event["method"], event["reason"], event["status"]) == ("CONNECT", "host-denied", None)
    assert "sent no request inside the tunnel" in event["error"]
    bench.settled()


def test_a_request_head_refused_inside_leaves_the_tunnels_event(bench: Bench) -> None:
    tunnel = connect_to("loop.rf.test", 443)
    refusal = HeadRefusal(
        client_id=tunnel.client_conn.id,
        peername=("127.0.0.1", 40000),
        request_id="req_head",
        denial=Denial(Reason.BAD_FRAMING, "obs-fold"),
        start_line=b"POST /hook HTTP/1.1",
    )
    (event,) = bench.run(*opened(tunnel), lambda: bench.log.head_refused(refusal), closed(tunnel))
    assert (event["reason"], event["request_id"]) == ("address-blocked", state(tunnel).request_id)
    assert "400 bad-framing, request id req_head" in event["error"]
    bench.settled()


def test_a_request_inside_that_fails_is_the_event_if_it_carried_the_refusal(
    bench: Bench,
) -> None:
    tunnel = connect_to("loop.rf.test", 443)
    request = inside(tunnel, "loop.rf.test")
    (event,) = bench.run(
        *opened(tunnel),
        HttpRequestHeadersHook(request),
        lambda: setattr(request, "error", _error("client disconnected")),
        HttpErrorHook(request),
        closed(tunnel),
    )
    assert (event["method"], event["reason"]) == ("POST", "address-blocked")
    bench.settled()


def test_a_connection_gone_before_anything_ends_both_exchanges_once(bench: Bench) -> None:
    tunnel = connect_to("loop.rf.test", 443)
    request = inside(tunnel, "loop.rf.test")
    (event,) = bench.run(*opened(tunnel), HttpRequestHeadersHook(request), closed(tunnel))
    assert (event["method"], event["reason"]) == ("POST", "address-blocked")
    bench.settled()


# -- what stays on the CONNECT ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "why"),
    [("closed.rf.test", "host-denied"), ("tunnel.rf.test", "address-blocked")],
)
def test_on_connect_and_passthrough_refuse_on_the_connect(
    bench: Bench, host: str, why: str
) -> None:
    tunnel = connect_to(host, 443)
    (event,) = bench.run(
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        HttpConnectErrorHook(tunnel),
        closed(tunnel),
    )
    assert_refused(tunnel, 403, why)
    assert (event["method"], event["reason"], event["status"]) == ("CONNECT", why, 403)
    bench.settled()


@pytest.mark.parametrize(
    ("credentials", "status", "why"),
    [
        (None, 407, "auth-required"),
        (basic("billing", TOKENS["RF_BILLING"]), 403, "sender-denied"),
    ],
)
def test_access_refusals_are_answered_on_the_connect(
    with_senders: Runtime, credentials: str | None, status: int, why: str
) -> None:
    bench = Bench(with_senders)
    tunnel = connect_to("scoped.rf.test", 443)
    if credentials is not None:
        tunnel.request.headers["Proxy-Authorization"] = credentials
    (event,) = bench.run(
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        HttpConnectErrorHook(tunnel),
        closed(tunnel),
    )
    assert_refused(tunnel, status, why)
    assert event["method"] == "CONNECT"
    bench.settled()


def test_a_transparent_listeners_connection_is_refused_inside_tls_too(bench: Bench) -> None:
    """Its CONNECT is the one TransparentTls makes from the ClientHello: accepted, and the
    request inside answered with the refusal, as for an explicit sender."""
    tunnel = connect_to("loop.rf.test", 443)
    tunnel.client_conn.proxy_mode = ProxyMode.parse("transparent")
    tunnel.client_conn.sockname = ("127.0.0.1", 443)  # what the sender dialled
    request = inside(tunnel, "loop.rf.test")
    bench.run(*opened(tunnel), *answered(request))
    assert bench.guard.tunnels[tunnel.client_conn.id].refusal is not None
    assert request.response is not None and request.response.status_code == 403
    assert request.response.headers["X-Hookwall-Reason"] == "address-blocked"


def test_an_allowed_connect_is_untouched(bench: Bench) -> None:
    tunnel = connect_to("ok.rf.test", 443)
    bench.run(ClientConnectedHook(tunnel.client_conn), HttpConnectHook(tunnel))
    assert_passed(tunnel)
    assert bench.guard.tunnels[tunnel.client_conn.id].refusal is None
    assert tunnel.request.host == "127.0.0.2"


def test_the_refusal_body_is_the_denial_contract(bench: Bench) -> None:
    tunnel = connect_to("127.0.0.1", 8443)
    request = inside(tunnel, "127.0.0.1")
    bench.run(*opened(tunnel), *answered(request))
    assert request.response is not None
    body = json.loads(request.response.get_text() or "")
    assert body["error"] == "address-blocked" and body["request_id"] == state(tunnel).request_id
    assert request.response.headers["X-Hookwall-Reason"] == "address-blocked"


def _error(message: str) -> Any:
    from mitmproxy import flow

    return flow.Error(message)
