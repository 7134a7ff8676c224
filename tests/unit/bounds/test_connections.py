"""ConnectionGuard in process: how many connections senders may hold, and how long one may
wait for its head or sit idle.

The caps are driven with test connections through mitmproxy's addon dispatch; the deadlines
run on a Sweeper whose clock the test moves, against a live in-process mitmproxy
(tests/unit/support/live.py), because what they do is write to and close a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from mitmproxy import connection
from mitmproxy.proxy.server_hooks import ClientConnectedHook, ClientDisconnectedHook
from mitmproxy.test import tflow

from hookwall.bounds.addons.connections import ConnectionGuard
from hookwall.flow.runtime import Runtime
from hookwall.flow.sweep import Sweeper
from hookwall.forwarding.addons.lifecycle import Lifecycle
from tests.unit.support.flows import assert_passed, connect_to, load, request_to, runtime_for
from tests.unit.support.live import OK, Receiver, live_proxy
from tests.unit.support.mitm import (
    HttpConnectedHook,
    HttpConnectHook,
    HttpRequestHeadersHook,
    run_hooks,
)

POLICY = """\
version: 1
unsafe: true
proxy:
  max_connections: 3
  max_connections_per_client: 2
  head_timeout: 2s
  idle_timeout: 10s
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    tls: passthrough
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return runtime_for(load(tmp_path, POLICY))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lifecycle(runtime: Runtime) -> Lifecycle:
    return Lifecycle(runtime, {})


@pytest.fixture
def guard(runtime: Runtime, lifecycle: Lifecycle, clock: Clock) -> ConnectionGuard:
    return ConnectionGuard(runtime, lifecycle, Sweeper(tick=3600, clock=clock))


def client(peer: str, sockname: tuple[str, int] = ("127.0.0.1", 8080)) -> connection.Client:
    conn = tflow.tclient_conn()
    conn.peername, conn.sockname, conn.error = (peer, 40000), sockname, None
    return conn


def refusal(conn: connection.Client) -> str | None:
    """Why mitmproxy is told to drop the connection at once (None: admitted)."""
    if conn.error is None:
        return None
    assert conn.error.startswith("hookwall is at its limit of ")
    return conn.error.rpartition("(")[2].rstrip(")")


# -- caps ----------------------------------------------------------------------------------------


def test_connections_beyond_the_caps_are_refused_and_logged_once_a_second(
    guard: ConnectionGuard,
) -> None:
    conns = [client(p) for p in ("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.5", "127.0.0.6")]
    with structlog.testing.capture_logs() as logs:
        run_hooks([guard], *(ClientConnectedHook(c) for c in conns))
        guard.sweeper.stop()
    assert [refusal(c) for c in conns] == [
        None,
        None,
        "max-connections-per-client",  # two from 127.0.0.1 already
        None,
        "max-connections",  # three in all
    ]
    refused = [e for e in logs if e["event"] == "client_refused"]
    assert [(e["reason"], e["limit"], e["client"]) for e in refused] == [
        ("max-connections-per-client", 2, "127.0.0.1"),
        ("max-connections", 3, "127.0.0.6"),
    ]


def test_a_connection_that_ends_frees_its_place(guard: ConnectionGuard) -> None:
    first, second, third = client("127.0.0.1"), client("127.0.0.1"), client("127.0.0.1")
    late = client("127.0.0.1")
    run_hooks(
        [guard],
        ClientConnectedHook(first),
        ClientConnectedHook(second),
        ClientConnectedHook(third),
        ClientDisconnectedHook(first),
        ClientDisconnectedHook(third),  # a refused one ending changes nothing
        ClientConnectedHook(late),
        lambda: guard.sweeper.stop(),
    )
    assert [refusal(c) for c in (first, second, third, late)] == [
        None,
        None,
        "max-connections-per-client",
        None,
    ]


def test_hookwalls_own_hops_have_their_own_connections(
    guard: ConnectionGuard, runtime: Runtime
) -> None:
    runtime.internal_addrs[:] = [("127.0.0.1", 7777)]
    public = [client(f"127.0.0.{n}") for n in (1, 5, 6)]
    hops = [client("127.0.0.1", ("127.0.0.1", 7777)) for _ in range(4)]
    run_hooks(
        [guard],
        *(ClientConnectedHook(c) for c in [*public, *hops]),
        lambda: guard.sweeper.stop(),
    )
    assert [refusal(c) for c in public] == [None, None, None]
    # the per-client cap is not theirs (all from loopback), the total is counted apart
    assert [refusal(c) for c in hops] == [None, None, None, "max-connections"]


# -- deadlines, as seen by the sweeper -----------------------------------------------------------


def test_a_head_deadline_runs_until_the_head_is_whole(guard: ConnectionGuard) -> None:
    flow = request_to("127.0.0.2", 8080)
    armed: list[int] = []
    run_hooks(
        [guard],
        ClientConnectedHook(flow.client_conn),
        lambda: armed.append(len(guard.sweeper)),
        HttpRequestHeadersHook(flow),  # in flight: its own deadlines bound it now
        lambda: armed.append(len(guard.sweeper)),
        lambda: guard.sweeper.stop(),
    )
    assert armed == [1, 0]


@pytest.mark.parametrize(("host", "armed"), [("127.0.0.3", 0), ("127.0.0.2", 1)])
def test_after_a_connect_an_intercepted_tunnel_must_shake_hands_in_time(
    guard: ConnectionGuard, host: str, armed: int
) -> None:
    """A passthrough tunnel (127.0.0.3) is bounded by its destination's deadline instead."""
    from hookwall.destinations.addons.guard import DestinationGuard

    tunnel = connect_to(host, 443)
    seen: list[int] = []
    run_hooks(
        [guard, DestinationGuard(guard.runtime)],
        ClientConnectedHook(tunnel.client_conn),
        HttpConnectHook(tunnel),
        lambda: seen.append(len(guard.sweeper)),
        HttpConnectedHook(tunnel),
        lambda: seen.append(len(guard.sweeper)),
        lambda: guard.sweeper.stop(),
    )
    assert seen == [0, armed]
    assert_passed(tunnel)


# -- deadlines, on a live connection -------------------------------------------------------------


async def closed(reader: asyncio.StreamReader) -> bytes:
    """What the proxy wrote before it closed the connection."""
    return await asyncio.wait_for(reader.read(), 5)


def test_a_head_that_does_not_arrive_in_time_is_answered_408_and_closed(
    guard: ConnectionGuard, lifecycle: Lifecycle, clock: Clock
) -> None:
    async def go() -> tuple[bytes, list[MutableMapping[str, Any]]]:
        async with live_proxy(lifecycle, guard, lifecycle.end) as proxy:
            reader, writer = await proxy.connect()  # and sends nothing
            clock.now += 1.9
            guard.sweeper.sweep()
            assert proxy.client_ids()  # still open
            with structlog.testing.capture_logs() as logs:
                clock.now += 0.2
                guard.sweeper.sweep()
                answer = await closed(reader)
            writer.close()
            guard.sweeper.stop()
            return answer, logs

    answer, logs = asyncio.run(go())
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"X-Hookwall-Reason: request-timeout" in answer
    assert b"Connection: close" in answer
    events = [e for e in logs if e["event"] == "client_closed"]
    assert [(e["reason"], e["timeout_s"]) for e in events] == [("head-timeout", 2.0)]


def test_a_connection_with_nothing_in_flight_is_closed_when_idle(
    guard: ConnectionGuard, lifecycle: Lifecycle, clock: Clock
) -> None:
    """After its exchange the (keep-alive) connection is idle: closed after idle_timeout,
    without an answer; the head deadline no longer applies."""

    async def go() -> tuple[bytes, bytes, bool]:
        async with Receiver() as receiver, live_proxy(lifecycle, guard, lifecycle.end) as proxy:
            reader, writer = await proxy.connect()
            target = f"{receiver.address[0]}:{receiver.address[1]}"
            writer.write(f"GET http://{target}/hook HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            await writer.drain()
            first = await asyncio.wait_for(reader.readexactly(len(OK)), 5)
            await proxy.quiet()
            assert lifecycle.inflight == 0  # its exchange is over
            clock.now += 5  # past head_timeout, within idle_timeout
            guard.sweeper.sweep()
            open_after_head_timeout = bool(proxy.client_ids())
            clock.now += 5.1
            guard.sweeper.sweep()
            rest = await closed(reader)
            writer.close()
            guard.sweeper.stop()
            return first, rest, open_after_head_timeout

    first, rest, open_after_head_timeout = asyncio.run(go())
    assert first == OK
    assert open_after_head_timeout
    assert b"HTTP/1.1 408" not in rest  # an idle connection just closes
