"""PassthroughTunnels in process: after a reload, every open ``tls: passthrough`` tunnel is
judged again under the new policy, and one the new policy would not open is refused.

Driven with the real DestinationGuard opening the tunnels (test flows, a real policy, the
real resolver against the local test DNS server). The judgement's rules are
tests/unit/destinations/test_tunnelcheck.py's; closing a live connection is covered by
tests/integration/test_reload_safety.py: here no connection is live, so none is closed and
the verdict is read from the CONNECT's exchange state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ClientDisconnectedHook

from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.destinations.addons.tunnels import PassthroughTunnels
from hookwall.flow.runtime import Runtime
from hookwall.policy import Policy
from tests.support.dnsserver import TestDnsServer
from tests.unit.support.flows import assert_passed, connect_to, load, runtime_for, state
from tests.unit.support.mitm import (
    AddonContext,
    HttpConnectedHook,
    HttpConnectHook,
    addon_context,
    background_done,
)

HEAD = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
"""
POLICY = (
    HEAD
    + """\
destinations:
  - hosts: [pt.pt.test, other.pt.test]
    tls: passthrough
  - hosts: [intercepted.pt.test]
"""
)
KEEP_OTHER = "  - hosts: [other.pt.test]\n    tls: passthrough\n"
# Each reload, and its verdict on a tunnel to pt.pt.test and on one to other.pt.test.
RELOADS = {
    "denied": (
        HEAD + "destinations:\n  - hosts: [pt.pt.test]\n    action: deny\n" + KEEP_OTHER,
        "host-denied",
        None,
    ),
    "narrowed": (
        HEAD
        + "destinations:\n  - hosts: [pt.pt.test]\n    network: {ports: [8443]}\n"
        + "    tls: passthrough\n"
        + KEEP_OTHER,
        "port-denied",
        None,
    ),
    "no longer passed through": (HEAD + "destinations:\n" + KEEP_OTHER, "host-denied", None),
    "senders now required": (
        HEAD + "senders:\n  billing: {credentials: [env:HW_PT_BILLING]}\n",
        "auth-required",
        "auth-required",
    ),
    "still allowed": (POLICY, None, None),
}


@pytest.fixture(scope="module")
def served(dns_server: TestDnsServer) -> TestDnsServer:
    for name in ("pt.pt.test", "other.pt.test", "intercepted.pt.test"):
        dns_server.add(name, "127.0.0.2")
    return dns_server


@pytest.fixture
def runtime(tmp_path: Path, served: TestDnsServer, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("HW_PT_BILLING", "billing-token-0123456789abcdef")
    return runtime_for(load(tmp_path, POLICY), served.address)


@pytest.fixture
def guard(runtime: Runtime) -> DestinationGuard:
    return DestinationGuard(runtime)


@pytest.fixture
def tunnels(runtime: Runtime, guard: DestinationGuard) -> PassthroughTunnels:
    return PassthroughTunnels(runtime, guard.tunnels)


async def opened(tctx: AddonContext, host: str) -> http.HTTPFlow:
    """A CONNECT to ``host`` judged, and its tunnel open."""
    flow = connect_to(host, 443)
    await tctx.hook(HttpConnectHook(flow), HttpConnectedHook(flow))
    assert_passed(flow)
    return flow


def reload(runtime: Runtime, tmp_path: Path, text: str) -> Policy:
    runtime.policy = load(tmp_path, text, "reloaded.yaml")
    return runtime.policy


@pytest.mark.parametrize("case", RELOADS)
def test_a_reload_judges_every_open_passthrough_tunnel_again(
    runtime: Runtime,
    guard: DestinationGuard,
    tunnels: PassthroughTunnels,
    tmp_path: Path,
    case: str,
) -> None:
    text, why, why_other = RELOADS[case]

    async def go() -> tuple[http.HTTPFlow, http.HTTPFlow, int]:
        with addon_context(guard, tunnels) as tctx:
            judged, kept = await opened(tctx, "pt.pt.test"), await opened(tctx, "other.pt.test")
            closed = await tunnels.rejudge(reload(runtime, tmp_path, text))
            return judged, kept, closed

    flow, other, closed = asyncio.run(go())
    assert closed == 0  # no live connection here to close
    for tunnel_flow, verdict in [(flow, why), (other, why_other)]:  # each judged on its own
        denial = state(tunnel_flow).denial
        assert (denial.reason if denial else None) == verdict
        tunnel = guard.tunnels[tunnel_flow.client_conn.id]
        if verdict is None:  # adopted: it lives under the new policy, at the same address
            assert tunnel.policy is runtime.policy
            assert str(tunnel.decision.pinned_ip) == "127.0.0.2"
        else:
            assert tunnel.policy is not runtime.policy


def test_a_reload_leaves_intercepted_tunnels_to_their_next_request(
    runtime: Runtime, guard: DestinationGuard, tunnels: PassthroughTunnels, tmp_path: Path
) -> None:
    denies_all = HEAD + 'destinations:\n  - hosts: ["*.pt.test"]\n    action: deny\n'

    async def go() -> http.HTTPFlow:
        with addon_context(guard, tunnels) as tctx:
            flow = await opened(tctx, "intercepted.pt.test")
            await tunnels.rejudge(reload(runtime, tmp_path, denies_all))
            return flow

    flow = asyncio.run(go())
    assert_passed(flow)  # judged again by the guard, at its next request
    assert guard.tunnels[flow.client_conn.id].policy is not runtime.policy


def test_a_tunnel_whose_connection_ended_is_not_judged(
    runtime: Runtime, guard: DestinationGuard, tunnels: PassthroughTunnels, tmp_path: Path
) -> None:
    async def go() -> http.HTTPFlow:
        with addon_context(guard, tunnels) as tctx:
            flow = await opened(tctx, "pt.pt.test")
            await tctx.hook(ClientDisconnectedHook(flow.client_conn))
            await tunnels.rejudge(reload(runtime, tmp_path, RELOADS["denied"][0]))
            return flow

    assert_passed(asyncio.run(go()))


def test_a_newer_reload_takes_over_the_judging(
    runtime: Runtime, guard: DestinationGuard, tunnels: PassthroughTunnels, tmp_path: Path
) -> None:
    """A rejudge under a policy that was already replaced stops: the newest one judges."""

    async def go() -> http.HTTPFlow:
        with addon_context(guard, tunnels) as tctx:
            flow = await opened(tctx, "pt.pt.test")
            stale = reload(runtime, tmp_path, RELOADS["denied"][0])
            reload(runtime, tmp_path, RELOADS["still allowed"][0])
            await tunnels.rejudge(stale)
            return flow

    assert_passed(asyncio.run(go()))


def test_the_reload_listener_judges_in_the_background(
    runtime: Runtime, guard: DestinationGuard, tunnels: PassthroughTunnels, tmp_path: Path
) -> None:
    """``reloaded`` (the reloader's callback) returns at once; the judging follows."""

    async def go() -> tuple[http.HTTPFlow, bool]:
        with addon_context(guard, tunnels) as tctx:
            flow = await opened(tctx, "pt.pt.test")
            old = runtime.policy
            tunnels.reloaded(old, reload(runtime, tmp_path, RELOADS["denied"][0]))
            judged_at_once = state(flow).denial is not None
            await background_done()
            return flow, judged_at_once

    flow, judged_at_once = asyncio.run(go())
    assert not judged_at_once
    denial = state(flow).denial
    assert denial is not None and denial.reason == "host-denied"


def test_a_tunnel_that_opened_during_a_reload_is_judged_under_the_new_policy(
    runtime: Runtime, guard: DestinationGuard, tunnels: PassthroughTunnels, tmp_path: Path
) -> None:
    """Its CONNECT was judged under the old policy, the swap came before it was open."""

    async def go() -> http.HTTPFlow:
        with addon_context(guard, tunnels) as tctx:
            flow = connect_to("pt.pt.test", 443)
            await tctx.hook(HttpConnectHook(flow))
            reload(runtime, tmp_path, RELOADS["denied"][0])
            await tctx.hook(HttpConnectedHook(flow))
            await background_done()
            return flow

    denial = state(asyncio.run(go())).denial
    assert denial is not None and denial.reason == "host-denied"


def test_done_stops_the_judging_under_way(
    runtime: Runtime, guard: DestinationGuard, tunnels: PassthroughTunnels, tmp_path: Path
) -> None:
    async def go() -> http.HTTPFlow:
        with addon_context(guard, tunnels) as tctx:
            flow = await opened(tctx, "pt.pt.test")
            tunnels.reloaded(runtime.policy, reload(runtime, tmp_path, RELOADS["denied"][0]))
            tunnels.done()
            with pytest.raises(asyncio.CancelledError):
                await background_done()
            return flow

    assert_passed(asyncio.run(go()))
