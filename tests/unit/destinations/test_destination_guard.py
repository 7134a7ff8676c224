"""DestinationGuard in process: every destination judged, and the connection pinned to the
address that was judged.

Driven through mitmproxy's addon dispatch with test flows, a real policy and the real
resolver aimed at the local test DNS server. The decisions themselves (every reason, every
spelling) are tests/unit/destinations/test_guard.py's; here, what the addon does with them:
the answer a refused sender gets, the request rewritten to the pinned address, the tunnel it
remembers, the last check at connect, SNI, and a tunnel judged again after a reload.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.proxy.layers.tls import TlsClienthelloHook, TlsStartServerHook
from mitmproxy.proxy.server_hooks import (
    ClientConnectedHook,
    ClientDisconnectedHook,
    ServerConnectHook,
    ServerConnectionHookData,
)

from hookwall.core.headers import UPGRADE as UPGRADE_HEADER
from hookwall.destinations import decide as decide_module
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.policy import Policy
from tests.support.dnsserver import TestDnsServer
from tests.unit.support.flows import (
    assert_passed,
    assert_refused,
    connect_to,
    inside,
    load,
    request_to,
    runtime_for,
)
from tests.unit.support.mitm import (
    HttpConnectHook,
    HttpRequestHeadersHook,
    HttpResponseHook,
    Step,
    client_hello,
    run_hooks,
    tls_data,
)

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  timeouts: {connect: 3s}
destinations:
  - hosts: [denied.ga.test]
    action: deny
  - hosts: [tunnel.ga.test]
    tls: passthrough
  - hosts: [upgrade.ga.test]
    upgrade: true
  - hosts: [narrow.ga.test]
    upgrade: true
    network: {ports: [80]}
  - hosts: [slow.ga.test]
    timeouts: {connect: 7s}
  - hosts: [closed.ga.test]
    action: deny
    connect_refusals: on-connect
"""
# After a reload: ok.ga.test is refused, tunnel.ga.test still allowed.
RELOADED = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [ok.ga.test]
    action: deny
"""
RECORDS = {
    "ok.ga.test": "127.0.0.2",
    "loop.ga.test": "127.0.0.1",
    "tunnel.ga.test": "127.0.0.2",
    "upgrade.ga.test": "127.0.0.2",
    "narrow.ga.test": "127.0.0.2",
    "slow.ga.test": "127.0.0.2",
}


@pytest.fixture(scope="module")
def served(dns_server: TestDnsServer) -> TestDnsServer:
    for name, address in RECORDS.items():
        dns_server.add(name, address)
    return dns_server


@pytest.fixture
def runtime(tmp_path: Path, served: TestDnsServer) -> Runtime:
    return runtime_for(load(tmp_path, POLICY), served.address)


@pytest.fixture
def guard(runtime: Runtime) -> DestinationGuard:
    return DestinationGuard(runtime)


def judged(guard: DestinationGuard, *steps: Step) -> None:
    run_hooks([guard], *steps)


def may_connect(guard: DestinationGuard, flow: http.HTTPFlow, address: tuple[str, int]) -> bool:
    """The guard's last check, where mitmproxy is about to connect to ``address``."""
    server = flow.server_conn
    server.address, server.error = address, None
    judged(guard, ServerConnectHook(ServerConnectionHookData(server, flow.client_conn)))
    return server.error is None


# -- plain HTTP ----------------------------------------------------------------------------------


def test_a_request_is_pinned_to_the_address_that_was_judged(guard: DestinationGuard) -> None:
    flow = request_to("ok.ga.test", 8080)
    judged(guard, HttpRequestHeadersHook(flow))
    state = assert_passed(flow)
    assert state.decision is not None and str(state.decision.pinned_ip) == "127.0.0.2"
    # mitmproxy connects to the checked IP; the receiver still sees its name
    assert (flow.request.host, flow.request.port) == ("127.0.0.2", 8080)
    assert flow.request.headers["Host"] == "ok.ga.test:8080"
    assert state.original_url == "http://ok.ga.test:8080/hook"  # logged by name
    assert may_connect(guard, flow, ("127.0.0.2", 8080))


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("denied.ga.test", "host-denied"),
        ("loop.ga.test", "address-blocked"),  # judged by what the name resolves to
        ("127.0.0.1", "address-blocked"),
        ("nowhere.ga.test", "dns-failed"),  # fail closed
        ("a..b", "invalid-host"),
    ],
)
def test_a_refused_destination_is_answered_403_and_never_connected(
    guard: DestinationGuard, host: str, why: str
) -> None:
    flow = request_to(host, 8080)
    judged(guard, HttpRequestHeadersHook(flow))
    state = assert_refused(flow, 403, why)
    assert state.decision is not None and not state.decision.allowed
    assert flow.request.host == host  # not rewritten


def test_only_an_address_a_decision_approved_may_be_connected(guard: DestinationGuard) -> None:
    flow = request_to("ok.ga.test", 8080)
    assert not may_connect(guard, flow, ("127.0.0.2", 8080))  # nothing judged yet
    judged(guard, HttpRequestHeadersHook(flow))
    assert may_connect(guard, flow, ("127.0.0.2", 8080))
    assert not may_connect(guard, flow, ("127.0.0.2", 8081))  # another port
    assert not may_connect(guard, flow, ("127.0.0.1", 8080))
    assert "unapproved address" in (flow.server_conn.error or "")


def test_the_connect_timeout_is_the_approving_destinations(
    guard: DestinationGuard, runtime: Runtime
) -> None:
    flow = request_to("slow.ga.test", 8080)
    judged(guard, HttpRequestHeadersHook(flow))
    assert guard.connect_timeout("127.0.0.2", 8080) == 7.0
    assert guard.connect_timeout("127.0.0.2", 9) == runtime.policy.defaults.timeouts.connect == 3


def test_an_upgrade_rule_sends_http_over_tls_verified_against_the_name(
    guard: DestinationGuard,
) -> None:
    flow = request_to("upgrade.ga.test", 80)
    judged(guard, HttpRequestHeadersHook(flow))
    state = assert_passed(flow)
    assert state.upgraded
    assert flow.request.url == "https://127.0.0.2/hook"
    assert flow.request.headers["Host"] == "upgrade.ga.test"
    assert may_connect(guard, flow, ("127.0.0.2", 443))
    data = tls_data(flow.client_conn, ("127.0.0.2", 443))
    judged(guard, TlsStartServerHook(data))
    assert data.context.server.sni == "upgrade.ga.test"


@pytest.mark.parametrize(("value", "upgraded"), [("https", True), (" HTTPS ", True), ("", False)])
def test_a_sender_may_ask_for_the_upgrade_and_the_header_stops_here(
    guard: DestinationGuard, value: str, upgraded: bool
) -> None:
    flow = request_to("ok.ga.test", 80)
    flow.request.headers[UPGRADE_HEADER] = value
    judged(guard, HttpRequestHeadersHook(flow))
    assert assert_passed(flow).upgraded is upgraded
    assert flow.request.scheme == ("https" if upgraded else "http")
    assert UPGRADE_HEADER not in flow.request.headers


def test_an_upgrade_to_anything_but_https_is_a_bad_request(guard: DestinationGuard) -> None:
    flow = request_to("ok.ga.test", 80)
    flow.request.headers[UPGRADE_HEADER] = "h2c"
    judged(guard, HttpRequestHeadersHook(flow))
    state = assert_refused(flow, 400, "bad-request")
    assert state.decision is None  # refused before any lookup


def test_an_upgrade_to_a_port_the_destination_does_not_allow_is_refused(
    guard: DestinationGuard,
) -> None:
    flow = request_to("narrow.ga.test", 80)
    judged(guard, HttpRequestHeadersHook(flow))
    state = assert_refused(flow, 403, "port-denied")
    assert state.denial is not None and "port 443" in state.denial.message
    assert flow.request.scheme == "http"


# -- CONNECT and the requests inside -------------------------------------------------------------


def test_a_connect_is_pinned_and_remembered_for_the_requests_inside(
    guard: DestinationGuard,
) -> None:
    tunnel = connect_to("ok.ga.test", 443)
    request = inside(tunnel, "ok.ga.test")
    judged(guard, HttpConnectHook(tunnel), HttpRequestHeadersHook(request))
    connect = assert_passed(tunnel)
    assert tunnel.request.host == "127.0.0.2"  # mitmproxy opens the tunnel to the checked IP
    remembered = guard.tunnels[tunnel.client_conn.id]
    assert remembered.decision is connect.decision and remembered.request_id == connect.request_id
    state = assert_passed(request)
    assert state.decision is connect.decision  # judged once, on the CONNECT
    assert state.original_url == "https://ok.ga.test/hook"


def test_a_request_inside_a_tunnel_must_name_the_connect_target(
    guard: DestinationGuard,
) -> None:
    tunnel = connect_to("ok.ga.test", 443)
    request = inside(tunnel, "upgrade.ga.test")  # another host through this tunnel
    judged(guard, HttpConnectHook(tunnel), HttpRequestHeadersHook(request))
    state = assert_refused(request, 403, "host-mismatch")
    assert state.denial is not None and "ok.ga.test" in state.denial.message


def test_tls_to_the_receiver_carries_the_checked_name_whatever_the_sender_said(
    guard: DestinationGuard,
) -> None:
    tunnel = connect_to("ok.ga.test", 443)
    judged(guard, HttpConnectHook(tunnel))
    data = tls_data(tunnel.client_conn, ("127.0.0.2", 443))
    data.context.server.sni = "evil.test"  # what the sender's ClientHello asked for
    judged(guard, TlsStartServerHook(data))
    assert data.context.server.sni == "ok.ga.test"


@pytest.mark.parametrize(("host", "passthrough"), [("tunnel.ga.test", True), ("ok.ga.test", False)])
def test_a_passthrough_tunnels_tls_is_left_untouched(
    guard: DestinationGuard, host: str, passthrough: bool
) -> None:
    tunnel = connect_to(host, 443)
    hello = client_hello(tunnel.client_conn, host)
    judged(guard, HttpConnectHook(tunnel), TlsClienthelloHook(hello))
    assert hello.ignore_connection is passthrough


def test_a_connect_refused_on_the_connect_opens_no_tunnel(guard: DestinationGuard) -> None:
    """(connect_refusals: on-connect; refusals inside TLS are test_refusals.py's.)"""
    tunnel = connect_to("closed.ga.test", 443)
    judged(guard, HttpConnectHook(tunnel))
    assert_refused(tunnel, 403, "host-denied")
    assert tunnel.client_conn.id not in guard.tunnels
    assert tunnel.request.host == "closed.ga.test"


def test_a_tunnel_is_forgotten_with_its_connection(guard: DestinationGuard) -> None:
    tunnel = connect_to("ok.ga.test", 443)
    judged(guard, HttpConnectHook(tunnel), ClientDisconnectedHook(tunnel.client_conn))
    assert tunnel.client_conn.id not in guard.tunnels


def _reloaded(runtime: Runtime, tmp_path: Path) -> Policy:
    runtime.policy = load(tmp_path, RELOADED, "reloaded.yaml")
    return runtime.policy


def test_after_a_reload_the_next_request_in_a_tunnel_is_judged_by_the_new_policy(
    runtime: Runtime, guard: DestinationGuard, tmp_path: Path
) -> None:
    """ok.ga.test is denied after the reload: the request is refused and the connection
    closes, so the sender's next CONNECT is judged afresh."""
    lifecycle = Lifecycle(runtime, guard.tunnels)
    tunnel = connect_to("ok.ga.test", 443)
    request = inside(tunnel, "ok.ga.test")
    run_hooks(
        [lifecycle, guard, lifecycle.end],
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        lambda: _reloaded(runtime, tmp_path),
        HttpRequestHeadersHook(request),
        HttpResponseHook(request),
    )
    assert_refused(request, 403, "host-denied")
    assert request.response is not None and request.response.headers["Connection"] == "close"


def test_after_a_reload_a_tunnel_the_new_policy_still_allows_is_adopted(
    runtime: Runtime, guard: DestinationGuard, tmp_path: Path
) -> None:
    tunnel = connect_to("tunnel.ga.test", 443)  # allowed by both policies
    request = inside(tunnel, "tunnel.ga.test")
    judged(
        guard,
        HttpConnectHook(tunnel),
        lambda: _reloaded(runtime, tmp_path),
        HttpRequestHeadersHook(request),
    )
    state = assert_passed(request)
    assert state.policy is runtime.policy
    assert guard.tunnels[tunnel.client_conn.id].policy is runtime.policy
    assert state.decision is not None and state.decision.settings is not None
    assert state.decision.settings.tls == "intercept"  # the new policy's settings now


def test_the_guard_fails_closed(guard: DestinationGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the adapter's path (fault injection: the decision itself raises)."""

    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(decide_module, "decide", explode)
    flow = request_to("ok.ga.test", 8080)
    judged(guard, HttpRequestHeadersHook(flow))
    state = assert_refused(flow, 403, "internal-error")
    assert state.denial is not None and "RuntimeError" in state.denial.message
    assert not may_connect(guard, flow, ("127.0.0.2", 8080))
