"""Lifecycle and ExchangeEnd in process, through mitmproxy's addon dispatch: the internal
listener and the start-up facts, what is in flight, the drain, and the end of every kind of
exchange. (tests/unit/forwarding/test_lifecycle.py calls the handlers directly.)"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest
import structlog
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ClientConnectedHook
from mitmproxy.test import tflow

from hookwall.flow.runtime import INTERNAL_HOST, Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.redirects.addon import InternalHops
from tests.unit.support.flows import (
    assert_refused,
    connect_to,
    load,
    request_to,
    responded,
    runtime_for,
    state,
)
from tests.unit.support.live import live_proxy
from tests.unit.support.mitm import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpResponseHook,
    addon_context,
    run_hooks,
)

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return runtime_for(load(tmp_path, POLICY))


@pytest.fixture
def lifecycle(runtime: Runtime) -> Lifecycle:
    return Lifecycle(runtime, {})


def test_running_opens_the_internal_listener_and_says_where_everything_listens(
    runtime: Runtime, lifecycle: Lifecycle
) -> None:
    async def go() -> tuple[tuple[str, int], list[dict[str, object]], bytes, bool]:
        async with live_proxy(InternalHops(runtime), lifecycle, lifecycle.end) as proxy:
            with structlog.testing.capture_logs() as logs:
                await lifecycle.running()
            (internal,) = runtime.internal_addrs
            # It serves the same chain: a stranger's request there is refused.
            reader, writer = await asyncio.open_connection(*internal)
            writer.write(b"GET http://127.0.0.2:9/ HTTP/1.1\r\nHost: 127.0.0.2:9\r\n\r\n")
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.close()
            await lifecycle.done()
            try:
                await asyncio.open_connection(*internal)
                still_open = True
            except OSError:
                still_open = False
            assert runtime.listen_addrs == [proxy.address]
            return internal, [dict(e) for e in logs], answer, still_open

    internal, logs, answer, still_open = asyncio.run(go())
    assert internal[0] == INTERNAL_HOST
    public = runtime.listen_addrs[0]
    for host, port in (public, internal):  # the guard refuses to connect to either
        assert (ipaddress.ip_address(host), port) in runtime.self_addresses
    (started,) = [e for e in logs if e["event"] == "proxy_started"]
    assert started["listen"] == [f"{public[0]}:{public[1]}"]
    assert started["internal_listen"] == [f"{internal[0]}:{internal[1]}"]
    assert answer.startswith(b"HTTP/1.1 400 ") and b"X-Hookwall-Reason: bad-request" in answer
    assert not still_open  # closed with the proxy


def test_an_exchange_is_in_flight_from_its_head_to_its_last_handler(lifecycle: Lifecycle) -> None:
    flow = request_to("127.0.0.2", 8080)
    counted: list[int] = []
    given_back: list[str] = []
    run_hooks(
        [lifecycle, lifecycle.end],
        ClientConnectedHook(flow.client_conn),
        lambda: counted.append(lifecycle.inflight),
        HttpRequestHeadersHook(flow),
        lambda: counted.append(lifecycle.inflight),
        lambda: state(flow).holds.add("slot", lambda: given_back.append("slot")),
        lambda: responded(flow),
        HttpResponseHook(flow),
        lambda: counted.append(lifecycle.inflight),
    )
    assert counted == [0, 1, 0]
    assert given_back == ["slot"] and state(flow).holds.held() == []


@pytest.mark.parametrize("end", [HttpConnectedHook, HttpConnectErrorHook])
def test_a_connect_is_an_exchange_of_its_own(
    lifecycle: Lifecycle, end: type[HttpConnectedHook] | type[HttpConnectErrorHook]
) -> None:
    tunnel = connect_to("127.0.0.2", 443)
    counted: list[int] = []
    run_hooks(
        [lifecycle, lifecycle.end],
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        lambda: counted.append(lifecycle.inflight),
        end(tunnel),
        lambda: counted.append(lifecycle.inflight),
    )
    assert counted == [1, 0]


def test_a_failed_exchange_is_classified_by_the_first_error_handler(lifecycle: Lifecycle) -> None:
    flow = request_to("127.0.0.2", 8080)
    seen_by_the_next_handler: list[str | None] = []

    class NextHandler:
        def error(self, failed: http.HTTPFlow) -> None:
            denial = state(failed).denial
            seen_by_the_next_handler.append(denial.reason if denial else None)

    run_hooks(
        [lifecycle, NextHandler(), lifecycle.end],
        ClientConnectedHook(flow.client_conn),
        HttpRequestHeadersHook(flow),
        lambda: setattr(flow, "error", tflow.terr("[Errno 111] Connect call failed")),
        HttpErrorHook(flow),
    )
    assert seen_by_the_next_handler == ["upstream-error"]
    assert lifecycle.inflight == 0


def test_a_drain_waits_for_what_is_in_flight_and_closes_its_connections(
    lifecycle: Lifecycle,
) -> None:
    flow = request_to("127.0.0.2", 8080)

    async def go() -> list[bool]:
        seen: list[bool] = []
        with addon_context(lifecycle, lifecycle.end) as tctx:
            await tctx.hook(ClientConnectedHook(flow.client_conn), HttpRequestHeadersHook(flow))
            drained = asyncio.create_task(lifecycle.drained())
            await asyncio.sleep(0)
            seen.append(drained.done())
            await tctx.hook(HttpResponseHook(responded(flow)))
            await asyncio.wait_for(drained, 1)
            seen.append(drained.done())
        return seen

    assert asyncio.run(go()) == [False, True]
    assert flow.response is not None and flow.response.headers["Connection"] == "close"


def test_a_hookwall_refusal_also_ends_the_exchange(runtime: Runtime, lifecycle: Lifecycle) -> None:
    """An exchange answered early (here: a stranger on the internal listener) is in flight
    until its response hook, like any other."""
    runtime.internal_addrs[:] = [("127.0.0.1", 7777)]
    flow = request_to("127.0.0.2", 8080)
    flow.client_conn.sockname = ("127.0.0.1", 7777)
    run_hooks(
        [InternalHops(runtime), lifecycle, lifecycle.end],
        ClientConnectedHook(flow.client_conn),
        HttpRequestHeadersHook(flow),
        HttpResponseHook(flow),
    )
    assert_refused(flow, 400, "bad-request")
    assert lifecycle.inflight == 0
