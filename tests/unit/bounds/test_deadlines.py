"""Deadlines in process: the receiver's clocks (response headers, whole response) and a
passthrough tunnel's lifetime.

Driven through mitmproxy's addon dispatch behind the real DestinationGuard (literal
addresses: no DNS), on real event-loop timers with deadlines of milliseconds; what an expiry
does to the receiver's connection is seen on a live in-process mitmproxy
(tests/unit/support/live.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ClientConnectedHook, ClientDisconnectedHook

from hookwall.bounds.addons.deadlines import Deadlines
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from tests.unit.support.flows import (
    assert_passed,
    assert_refused,
    connect_to,
    load,
    request_to,
    responded,
    runtime_for,
    state,
)
from tests.unit.support.live import Receiver, live_proxy
from tests.unit.support.mitm import (
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
    addon_context,
)

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  timeouts: {headers: 50ms, response: 300ms}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    tls: passthrough
"""
HEADERS_S, RESPONSE_S = 0.05, 0.3
# A timer and a sleep on one loop fire in deadline order whatever the load; the margin keeps
# the few steps between them out of the way.
MARGIN = 0.05


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return runtime_for(load(tmp_path, POLICY))


@pytest.fixture
def lifecycle(runtime: Runtime) -> Lifecycle:
    return Lifecycle(runtime, {})


@pytest.fixture
def guard(runtime: Runtime) -> DestinationGuard:
    return DestinationGuard(runtime)


@pytest.fixture
def deadlines(lifecycle: Lifecycle) -> Deadlines:
    return Deadlines(lifecycle)


def timed_out(flow: http.HTTPFlow) -> str | None:
    """Which clock cut the exchange, from the sender's verdict (None: none did)."""
    denial = state(flow).denial
    if denial is None:
        return None
    assert (denial.reason, denial.status) == ("response-timeout", 504)
    return denial.message.removeprefix("the receiver did not send the ").partition(" within")[0]


def test_both_clocks_start_when_the_request_goes_upstream(
    guard: DestinationGuard, deadlines: Deadlines
) -> None:
    flow = request_to("127.0.0.2", 8080)

    async def go() -> list[str | None]:
        with addon_context(guard, deadlines) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow))
            await asyncio.sleep(RESPONSE_S)  # before the request is sent: no clock runs
            seen = [timed_out(flow)]
            await tctx.hook(HttpRequestHook(flow))
            assert "deadlines" in state(flow).holds.held()
            await asyncio.sleep(HEADERS_S + MARGIN)
            seen.append(timed_out(flow))
            return seen

    assert asyncio.run(go()) == [None, "response headers"]


def test_the_whole_response_has_its_own_deadline(
    guard: DestinationGuard, deadlines: Deadlines
) -> None:
    """The headers came in time; a receiver trickling the body is cut all the same."""
    flow = request_to("127.0.0.2", 8080)

    async def go() -> list[str | None]:
        with addon_context(guard, deadlines) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow), HttpRequestHook(flow))
            responded(flow)
            await tctx.hook(HttpResponseHeadersHook(flow))
            await asyncio.sleep(HEADERS_S + MARGIN)
            seen = [timed_out(flow)]
            await asyncio.sleep(RESPONSE_S)
            seen.append(timed_out(flow))
            return seen

    assert asyncio.run(go()) == [None, "whole response"]


@pytest.mark.parametrize("end", ["response", "error"])
def test_the_end_of_the_exchange_stops_both_clocks(
    guard: DestinationGuard, deadlines: Deadlines, end: str
) -> None:
    flow = request_to("127.0.0.2", 8080)

    async def go() -> None:
        with addon_context(guard, deadlines) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow), HttpRequestHook(flow))
            if end == "response":
                await tctx.hook(HttpResponseHook(responded(flow)))
            else:
                await tctx.hook(HttpErrorHook(flow))
            await asyncio.sleep(RESPONSE_S + MARGIN)

    asyncio.run(go())
    assert timed_out(flow) is None


def test_the_exchanges_end_stops_them_however_it_ends(
    guard: DestinationGuard, deadlines: Deadlines
) -> None:
    """The clocks are a hold of the exchange: given back with it (a sender gone, a crash)."""
    flow = request_to("127.0.0.2", 8080)

    async def go() -> None:
        with addon_context(guard, deadlines) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow), HttpRequestHook(flow))
            state(flow).holds.release_all()
            await asyncio.sleep(RESPONSE_S + MARGIN)

    asyncio.run(go())
    assert timed_out(flow) is None


def test_a_refused_request_starts_no_clock(guard: DestinationGuard, deadlines: Deadlines) -> None:
    flow = request_to("127.0.0.1", 8080)

    async def go() -> None:
        with addon_context(guard, deadlines) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow), HttpRequestHook(flow))
            await asyncio.sleep(HEADERS_S + MARGIN)

    asyncio.run(go())
    found = assert_refused(flow, 403, "address-blocked")  # and nothing else
    assert found.holds.held() == []


@pytest.mark.parametrize(("host", "held"), [("127.0.0.3", ["tunnel deadline"]), ("127.0.0.2", [])])
def test_a_passthrough_tunnel_lives_at_most_its_response_timeout(
    lifecycle: Lifecycle, guard: DestinationGuard, deadlines: Deadlines, host: str, held: list[str]
) -> None:
    """Hookwall sees no request inside: the tunnel is one exchange, on its connection."""
    tunnel = connect_to(host, 443)

    async def go() -> list[str]:
        with addon_context(lifecycle, guard, deadlines) as tctx:
            await tctx.hook(ClientConnectedHook(tunnel.client_conn), HttpConnectHook(tunnel))
            holds = lifecycle.connection_holds(tunnel.client_conn.id).held()
            await tctx.hook(ClientDisconnectedHook(tunnel.client_conn))
            return holds

    assert asyncio.run(go()) == held
    assert_passed(tunnel)


def test_an_expired_deadline_closes_the_receivers_connection(
    lifecycle: Lifecycle, guard: DestinationGuard, deadlines: Deadlines
) -> None:
    async def go() -> tuple[http.HTTPFlow, bytes]:
        async with (
            Receiver(silent=True) as receiver,
            live_proxy(lifecycle, guard, deadlines, lifecycle.end) as proxy,
        ):
            reader, writer = await proxy.connect()
            answer = await proxy.get(writer, reader, receiver)
            await receiver.closed_by_proxy()  # hookwall hung up on the receiver
            writer.close()
            (flow,) = proxy.flows
            return flow, answer

    flow, answer = asyncio.run(go())
    assert timed_out(flow) == "response headers"
    assert answer.startswith(b"HTTP/1.1 50")  # the sender is answered (its page: errorpages)
