"""Retries in process: a failed delivery retried by hookwall itself, each attempt a new
request through its own listener, the sender answered with the last attempt's response.

The first attempt is a test flow judged by the real DestinationGuard; the retries go through
hookwall's own listener, a live in-process mitmproxy running the real InternalHops,
Lifecycle, DestinationGuard and HopHeaders (tests/unit/support/live.py) in front of a
receiver on 127.0.0.2. Waits and the retry rules are tests/unit/retries/test_retries.py's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from mitmproxy import http

from hookwall.core.denials import Denial, Reason
from hookwall.core.headers import INTERNAL as INTERNAL_HEADER
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.respond import deny
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.mitm import errorpages
from hookwall.redirects.addon import InternalHops
from hookwall.retries.addon import Retries
from tests.unit.support.flows import load, request_to, responded, runtime_for, state
from tests.unit.support.live import OK, Receiver, live_proxy, own_listener

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  limits: {retry_after_max: 50ms}
  retries: {attempts: 2, backoff: 10ms, max_backoff: 20ms, on: [connect-error, 503]}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    retries: {attempts: 0}
"""
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return runtime_for(load(tmp_path, POLICY))


async def first_attempt(runtime: Runtime, flow: http.HTTPFlow, status: int) -> None:
    """The flow judged, then answered ``status`` by the receiver; then Retries' turn, with
    hookwall's own listener live in front of the receivers."""
    response = responded(flow, status, b"first").response
    await DestinationGuard(runtime).requestheaders(flow)
    flow.response = response
    async with live_proxy(*own_listener(runtime)) as proxy:
        runtime.internal_addrs[:] = [proxy.address]
        await Retries(runtime).response(flow)


def delivery(runtime: Runtime, status: int, *answers: bytes) -> tuple[http.HTTPFlow, list[bytes]]:
    """A GET whose first attempt got ``status``, the receiver answering the retries with
    ``answers``; the flow afterwards and the retries' request heads."""

    async def go() -> tuple[http.HTTPFlow, list[bytes]]:
        async with Receiver(*answers) as receiver:
            flow = request_to(*receiver.address, method="GET", body=b"")
            flow.request.headers["X-Event"] = "invoice.paid"
            await first_attempt(runtime, flow, status)
            return flow, receiver.heads

    return asyncio.run(go())


def test_a_retriable_status_is_retried_and_the_sender_gets_the_last_answer(
    runtime: Runtime,
) -> None:
    flow, heads = delivery(runtime, 503, OK)
    assert flow.response is not None
    assert (flow.response.status_code, flow.response.content) == (200, b"ok")
    assert state(flow).received_status == 503  # the first attempt's, for its exchange event
    (head,) = heads
    lowered = head.lower()
    assert head.startswith(b"GET /hook HTTP/1.1") and b"x-event: invoice.paid" in lowered
    assert INTERNAL_HEADER.lower().encode() not in lowered  # the marker stops at hookwall


def test_retries_stop_after_their_attempts(runtime: Runtime) -> None:
    flow, heads = delivery(runtime, 503, UNAVAILABLE)
    assert len(heads) == 2  # attempts: 2 retries after the first try
    assert flow.response is not None
    assert (flow.response.status_code, flow.response.content) == (503, b"busy")


@pytest.mark.parametrize("status", [200, 500, 404])
def test_other_statuses_are_the_senders_answer(runtime: Runtime, status: int) -> None:
    flow, heads = delivery(runtime, status, OK)
    assert heads == []
    assert flow.response is not None and flow.response.status_code == status
    assert state(flow).received_status is None


def test_a_receivers_retry_after_is_honoured_up_to_its_clamp(runtime: Runtime) -> None:
    """Retry-After: 3600, clamped by limits.retry_after_max (50ms): retried, and soon."""

    async def go() -> tuple[http.HTTPFlow, list[bytes], float]:
        async with Receiver(OK) as receiver:
            flow = request_to(*receiver.address, method="GET", body=b"")
            response = responded(flow, 503).response
            assert response is not None
            response.headers["Retry-After"] = "3600"
            await DestinationGuard(runtime).requestheaders(flow)
            flow.response = response
            async with live_proxy(*own_listener(runtime)) as proxy:
                runtime.internal_addrs[:] = [proxy.address]
                started = time.monotonic()
                await Retries(runtime).response(flow)
                return flow, receiver.heads, time.monotonic() - started

    flow, heads, took = asyncio.run(go())
    assert len(heads) == 1 and took < 5
    assert flow.response is not None and flow.response.status_code == 200


def test_a_destination_without_retries_is_left_alone(runtime: Runtime) -> None:
    flow = request_to("127.0.0.3", 8080, method="GET", body=b"")
    asyncio.run(first_attempt(runtime, flow, 503))
    assert flow.response is not None and flow.response.content == b"first"


def test_hookwalls_own_refusals_are_never_retried(runtime: Runtime) -> None:
    """A 503 queue-full is hookwall's own answer: the receiver was not even asked."""

    async def go() -> tuple[http.HTTPFlow, list[bytes]]:
        async with Receiver(OK) as receiver:
            flow = request_to(*receiver.address, method="GET", body=b"")
            await DestinationGuard(runtime).requestheaders(flow)
            deny(flow, state(flow), Denial(Reason.QUEUE_FULL, "full"))  # as FloodControl answers
            async with live_proxy(*own_listener(runtime)) as proxy:
                runtime.internal_addrs[:] = [proxy.address]
                await Retries(runtime).response(flow)
            return flow, receiver.heads

    flow, heads = asyncio.run(go())
    assert heads == []
    assert flow.response is not None and flow.response.status_code == 503


def test_a_delivery_past_its_deadline_is_not_retried(runtime: Runtime) -> None:
    async def go() -> tuple[http.HTTPFlow, list[bytes]]:
        async with Receiver(OK) as receiver:
            flow = request_to(*receiver.address, method="GET", body=b"")
            response = responded(flow, 503).response
            await DestinationGuard(runtime).requestheaders(flow)
            flow.response = response
            state(flow).started -= 3600  # it began an hour ago
            async with live_proxy(*own_listener(runtime)) as proxy:
                runtime.internal_addrs[:] = [proxy.address]
                await Retries(runtime).response(flow)
            return flow, receiver.heads

    flow, heads = asyncio.run(go())
    assert heads == []
    assert flow.response is not None and flow.response.status_code == 503


def test_a_retry_is_not_retried_itself_nor_is_a_redirect(runtime: Runtime) -> None:
    """Both got a 503 the receiver would answer 200 to next: neither is sent again (a retry
    is the loop's own attempt; a redirect chain's answer is final)."""

    async def go() -> tuple[list[http.HTTPFlow], list[bytes]]:
        async with Receiver(OK) as receiver:
            hop, redirect = (request_to(*receiver.address, method="GET", body=b"") for _ in "ab")
            hop.request.headers[INTERNAL_HEADER] = f"{runtime.internal_token} rid=r1 attempt=2"
            InternalHops(runtime).requestheaders(hop)
            for flow in (hop, redirect):
                await DestinationGuard(runtime).requestheaders(flow)
                responded(flow, 503)
            state(redirect).redirect = {"status": 302, "location": "x", "action": "followed"}
            async with live_proxy(*own_listener(runtime)) as proxy:
                runtime.internal_addrs[:] = [proxy.address]
                for flow in (hop, redirect):
                    await Retries(runtime).response(flow)
            return [hop, redirect], receiver.heads

    flows, heads = asyncio.run(go())
    assert heads == []
    for flow in flows:
        assert flow.response is not None and flow.response.status_code == 503


def test_a_failed_connection_is_retried_and_the_sender_answered_by_the_last_attempt(
    runtime: Runtime,
) -> None:
    """End to end in process: the receiver hangs up on the first attempt (the flow fails in
    mitmproxy's error hook), the retry through hookwall's own listener (which Lifecycle
    opens next to the public one) gets its 200, and that is what the sender reads."""
    errorpages.install()  # hookwall writes the answer where mitmproxy would write its error

    async def go() -> tuple[bytes, int]:
        async with Receiver(OK, hang_ups=1) as receiver:
            lifecycle = Lifecycle(runtime, {})
            chain = [
                InternalHops(runtime),
                lifecycle,
                DestinationGuard(runtime),
                Retries(runtime),
                lifecycle.end,
            ]
            async with live_proxy(*chain) as proxy:
                await lifecycle.running()  # the internal listener: runtime.internal_addrs
                try:
                    reader, writer = await proxy.connect()
                    answer = await proxy.get(writer, reader, receiver)
                    writer.close()
                finally:
                    await lifecycle.done()
                return answer, len(receiver.heads)

    answer, heads = asyncio.run(go())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nok")
    assert heads == 2
