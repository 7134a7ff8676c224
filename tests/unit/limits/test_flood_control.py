"""FloodControl in process: a request takes its destination's slot once its body is whole,
gives it back with the receiver's verdict, and is refused when the destination is full,
too fast, paused or failing.

Driven through mitmproxy's addon dispatch behind the real DestinationGuard (literal
addresses: no DNS) and Lifecycle, on the real DestinationLimiter with a clock the test moves.
The limiter's own semantics are tests/unit/limits/'s; here, what the addon asks of it and what
the sender gets.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.proxy.server_hooks import (
    ClientConnectedHook,
    ClientDisconnectedHook,
    ServerConnectedHook,
    ServerConnectErrorHook,
    ServerConnectionHookData,
)
from mitmproxy.test import tflow

from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.limits import DestinationLimiter
from hookwall.limits.addon import FloodControl, limit_key
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
from tests.unit.support.mitm import (
    AddonContext,
    HttpConnectedHook,
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHook,
    addon_context,
)

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  limits:
    concurrency: 1
    queue: 1
    queue_timeout: 10s
    circuit: {failures: 2, cooloff: 30s}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    limits: {rate: 1/m, concurrency: 5}
  - hosts: [127.0.0.4]
    network: {allow: [127.0.0.4/32]}
    tls: passthrough
  - hosts: [per-sender.test]
    limits: {key: host, per_sender: true}
"""
KEY = "127.0.0.2:8080"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(tmp_path: Path, clock: Clock) -> Runtime:
    runtime = runtime_for(load(tmp_path, POLICY))
    runtime.limiter = DestinationLimiter(clock=clock)
    return runtime


class Bench:
    """The chain a request meets up to its admission, and what the limiter says."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.guard = DestinationGuard(runtime)
        self.lifecycle = Lifecycle(runtime, self.guard.tunnels)
        self.flood = FloodControl(runtime.limiter, self.lifecycle)
        self.chain = [self.lifecycle, self.guard, self.flood, self.lifecycle.end]

    def row(self, key: str = KEY) -> dict[str, object]:
        assert isinstance(self.runtime.limiter, DestinationLimiter)
        (row,) = [row for row in self.runtime.limiter.snapshot() if row["key"] == key]
        return row

    async def admitted(self, tctx: AddonContext, flow: http.HTTPFlow) -> None:
        await tctx.hook(
            ClientConnectedHook(flow.client_conn),
            HttpRequestHeadersHook(flow),
            HttpRequestHook(flow),
        )


@pytest.fixture
def bench(runtime: Runtime) -> Bench:
    return Bench(runtime)


def test_a_request_holds_its_destinations_slot_until_the_receivers_verdict(bench: Bench) -> None:
    flow = request_to("127.0.0.2", 8080)
    seen: list[tuple[object, object]] = []

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, flow)
            seen.append((bench.row()["in_flight"], "slot" in state(flow).holds.held()))
            await tctx.hook(HttpResponseHook(responded(flow, 200)))
            seen.append((bench.row()["in_flight"], "slot" in state(flow).holds.held()))

    asyncio.run(go())
    found = assert_passed(flow)
    assert found.limit_key == KEY and found.queue_ms == 0
    assert seen == [(1, True), (0, False)]
    assert bench.row()["failures"] == 0


@pytest.mark.parametrize(("status", "failures"), [(200, 0), (404, 0), (500, 1), (503, 1)])
def test_a_receivers_5xx_counts_for_the_circuit(bench: Bench, status: int, failures: int) -> None:
    flow = request_to("127.0.0.2", 8080)

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, flow)
            await tctx.hook(HttpResponseHook(responded(flow, status)))

    asyncio.run(go())
    assert bench.row()["failures"] == failures


@pytest.mark.parametrize(
    ("error", "failures"),
    [("[Errno 111] Connect call failed ('127.0.0.2', 8080)", 1), ("client disconnected", 0)],
    ids=["receiver-refused", "sender-left"],
)
def test_a_failed_exchange_counts_as_lifecycle_classified_it(
    bench: Bench, error: str, failures: int
) -> None:
    flow = request_to("127.0.0.2", 8080)

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, flow)
            flow.error = tflow.terr(error)
            await tctx.hook(HttpErrorHook(flow))

    asyncio.run(go())
    assert bench.row()["failures"] == failures and bench.row()["in_flight"] == 0


def test_after_enough_failures_the_circuit_opens_and_refuses(bench: Bench) -> None:
    flows = [request_to("127.0.0.2", 8080) for _ in range(3)]

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            for flow in flows[:2]:
                await bench.admitted(tctx, flow)
                await tctx.hook(HttpResponseHook(responded(flow, 502)))
            await bench.admitted(tctx, flows[2])

    asyncio.run(go())
    found = assert_refused(flows[2], 503, "circuit-open")
    assert flows[2].response is not None and int(flows[2].response.headers["Retry-After"]) >= 1
    assert found.limit_key == KEY  # counted per destination in the metrics
    assert "slot" not in found.holds.held()


def test_a_full_destination_queues_then_refuses(bench: Bench, clock: Clock) -> None:
    """concurrency 1, queue 1: the second waits for the first's slot, the third is refused."""
    first, second, third = (request_to("127.0.0.2", 8080) for _ in range(3))

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, first)
            waiting = asyncio.create_task(bench.admitted(tctx, second))
            for _ in range(100):  # it reaches the queue at its first await
                if bench.row()["queued"] == 1:
                    break
                await asyncio.sleep(0)
            assert not waiting.done() and "queue wait" in state(second).holds.held()
            await bench.admitted(tctx, third)
            clock.now += 0.25
            await tctx.hook(HttpResponseHook(responded(first)))  # its slot goes to the second
            await waiting
            await tctx.hook(HttpResponseHook(responded(second)))

    asyncio.run(go())
    assert_passed(first)
    assert state(second).queue_ms == 250.0
    assert_refused(third, 503, "queue-full")
    assert bench.row()["in_flight"] == 0


def test_a_queued_request_that_waits_too_long_is_refused(bench: Bench, clock: Clock) -> None:
    first, second = request_to("127.0.0.2", 8080), request_to("127.0.0.2", 8080)

    async def go() -> None:
        assert isinstance(bench.runtime.limiter, DestinationLimiter)
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, first)
            waiting = asyncio.create_task(bench.admitted(tctx, second))
            await asyncio.sleep(0)
            clock.now += 10.5
            bench.runtime.limiter.wake()
            await waiting

    asyncio.run(go())
    assert_refused(second, 503, "queue-timeout")


def test_a_sender_that_leaves_stops_waiting_in_the_queue(bench: Bench) -> None:
    first, second = request_to("127.0.0.2", 8080), request_to("127.0.0.2", 8080)

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, first)
            waiting = asyncio.create_task(bench.admitted(tctx, second))
            await asyncio.sleep(0)
            assert bench.row()["queued"] == 1
            await tctx.hook(ClientDisconnectedHook(second.client_conn))
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            assert bench.row()["queued"] == 0
            await tctx.hook(HttpResponseHook(responded(first)))

    asyncio.run(go())
    assert state(second).holds.held() == [] and bench.row()["in_flight"] == 0


def test_a_destination_over_its_rate_is_answered_429(bench: Bench) -> None:
    first, second = request_to("127.0.0.3", 8080), request_to("127.0.0.3", 8080)

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, first)
            await tctx.hook(HttpResponseHook(responded(first)))
            await bench.admitted(tctx, second)  # at once: no token yet

    asyncio.run(go())
    assert_passed(first)
    assert_refused(second, 429, "rate-limited")
    assert second.response is not None and int(second.response.headers["Retry-After"]) > 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_receivers_retry_after_pauses_the_destination_for_everyone(
    bench: Bench, status: int
) -> None:
    """Paused for longer than the queue would wait: refused up front."""
    first, second = request_to("127.0.0.2", 8080), request_to("127.0.0.2", 8080)

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, first)
            response = responded(first, status).response
            assert response is not None
            response.headers["Retry-After"] = "60"
            await tctx.hook(HttpResponseHook(first))
            await bench.admitted(tctx, second)

    asyncio.run(go())
    assert bench.row()["paused_for_s"] == 60.0
    assert_refused(second, 503, "queue-timeout")


def test_refused_or_unjudged_requests_take_no_slot(bench: Bench, runtime: Runtime) -> None:
    refused = request_to("127.0.0.1", 8080)  # the guard refuses it
    unjudged = request_to("127.0.0.2", 8080)

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await bench.admitted(tctx, refused)
        with addon_context(bench.flood) as tctx:
            await tctx.hook(HttpRequestHook(unjudged))

    asyncio.run(go())
    assert_refused(refused, 403, "address-blocked")
    assert state(refused).limit_key is None
    assert runtime.limiter.snapshot() == []


@pytest.mark.parametrize(
    ("verdict", "failures"),
    [(ServerConnectedHook, 0), (ServerConnectErrorHook, 1), (None, 0)],
    ids=["connected", "connect-failed", "never-connected"],
)
def test_a_passthrough_tunnel_holds_a_slot_for_its_life(
    bench: Bench,
    verdict: type[ServerConnectedHook] | type[ServerConnectErrorHook] | None,
    failures: int,
) -> None:
    tunnel = connect_to("127.0.0.4", 443)
    key = "127.0.0.4:443"
    seen: list[object] = []

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await tctx.hook(ClientConnectedHook(tunnel.client_conn), HttpConnectHook(tunnel))
            await tctx.hook(HttpConnectedHook(tunnel))  # the CONNECT exchange is over ...
            seen.append(bench.row(key)["in_flight"])  # ... the tunnel keeps its slot
            if verdict is not None:
                data = ServerConnectionHookData(tunnel.server_conn, tunnel.client_conn)
                await tctx.hook(verdict(data))
            await tctx.hook(ClientDisconnectedHook(tunnel.client_conn))
            seen.append(bench.row(key)["in_flight"])

    asyncio.run(go())
    assert_passed(tunnel)
    assert seen == [1, 0]
    assert bench.row(key)["failures"] == failures


def test_an_intercepted_tunnel_takes_no_slot_itself(bench: Bench) -> None:
    tunnel = connect_to("127.0.0.2", 443)

    async def go() -> None:
        with addon_context(*bench.chain) as tctx:
            await tctx.hook(ClientConnectedHook(tunnel.client_conn), HttpConnectHook(tunnel))

    asyncio.run(go())
    assert bench.runtime.limiter.snapshot() == []


def test_the_budget_is_per_host_and_port_unless_the_policy_says_otherwise(
    runtime: Runtime,
) -> None:
    defaults = runtime.policy.defaults
    scoped = runtime.policy.settings_for("per-sender.test")
    assert limit_key(defaults, "a.test", 8080, "billing") == "a.test:8080"
    assert limit_key(scoped, "per-sender.test", 8080, "billing") == "per-sender.test|billing"
    assert limit_key(scoped, "per-sender.test", 8080, None) == "per-sender.test|-"
