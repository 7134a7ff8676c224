"""BodyCaps in process: each destination's caps on bodies, the deadline of a request body,
and the memory all request bodies may hold at once.

Driven through mitmproxy's addon dispatch behind the real DestinationGuard (a literal
address: no DNS), with a real policy; the body deadline runs on a Sweeper whose clock the
test moves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mitmproxy import http

from hookwall.bounds.addons.bodycaps import BodyCaps
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.flow.sweep import Sweeper
from tests.unit.support.flows import (
    assert_passed,
    assert_refused,
    load,
    request_to,
    responded,
    runtime_for,
    state,
)
from tests.unit.support.mitm import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
    addon_context,
    run_hooks,
)

POLICY = """\
version: 1
unsafe: true
proxy:
  max_buffered_bodies: 3KiB
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  max_request_body: 2KiB
  max_response_body: 1KiB
  timeouts: {body: 5s}
"""
KIB = 1024


class Clock:
    """The sweeper's clock: time passes when the test says so."""

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
def caps(runtime: Runtime, clock: Clock) -> BodyCaps:
    return BodyCaps(runtime, Sweeper(tick=3600, clock=clock))  # swept by the tests only


@pytest.fixture
def guard(runtime: Runtime) -> DestinationGuard:
    return DestinationGuard(runtime)


def sending(size: int, *, chunked: bool = False) -> http.HTTPFlow:
    """A request whose head says a body of ``size`` bytes follows (or a chunked one)."""
    flow = request_to("127.0.0.2", 8080, body=b"x" * size)
    if chunked:
        del flow.request.headers["Content-Length"]
        flow.request.headers["Transfer-Encoding"] = "chunked"
    return flow


def test_a_body_declared_larger_than_the_cap_is_refused_at_the_head(
    guard: DestinationGuard, caps: BodyCaps
) -> None:
    flow = sending(2 * KIB + 1)
    run_hooks([guard, caps], HttpRequestHeadersHook(flow))
    state = assert_refused(flow, 413, "request-too-large")
    assert state.denial is not None and "2KiB" in state.denial.message
    assert caps.budget.in_use == 0 and state.holds.held() == []  # nothing reserved


def test_a_body_within_its_cap_is_reserved_and_timed_until_it_is_whole(
    guard: DestinationGuard, caps: BodyCaps
) -> None:
    flow = sending(2 * KIB)
    reserved: list[int] = []
    held: list[list[str]] = []

    def note() -> None:
        reserved.append(caps.budget.in_use)
        held.append(state(flow).holds.held())

    async def go() -> None:
        with addon_context(guard, caps) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow))
            note()
            await tctx.hook(HttpRequestHook(flow))  # the body has arrived
            note()
            assert len(caps.sweeper) == 0  # its deadline is off
            state(flow).holds.release_all()  # the exchange ends
            note()
            caps.sweeper.stop()

    asyncio.run(go())
    assert_passed(flow)
    assert reserved == [2 * KIB, 2 * KIB, 0]
    assert held[0] == ["buffered body", "deadline: request body"]
    assert held[1] == ["buffered body"]
    assert held[2] == []


def test_a_chunked_body_reserves_its_cap_and_is_refused_once_it_proves_larger(
    guard: DestinationGuard, caps: BodyCaps
) -> None:
    flow = sending(2 * KIB + 1, chunked=True)

    async def go() -> int:
        with addon_context(guard, caps) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow))
            reserved = caps.budget.in_use
            await tctx.hook(HttpRequestHook(flow))
            caps.sweeper.stop()
            return reserved

    assert asyncio.run(go()) == 2 * KIB  # nothing declared: the most it may be
    assert_refused(flow, 413, "request-too-large")


def test_a_request_without_a_body_holds_nothing(guard: DestinationGuard, caps: BodyCaps) -> None:
    flow = request_to("127.0.0.2", 8080, method="GET", body=b"")
    del flow.request.headers["Content-Length"]
    run_hooks([guard, caps], HttpRequestHeadersHook(flow), HttpRequestHook(flow))
    assert assert_passed(flow).holds.held() == []
    assert caps.budget.in_use == 0 and len(caps.sweeper) == 0


def test_bodies_beyond_the_memory_budget_wait_outside_with_503(
    guard: DestinationGuard, caps: BodyCaps
) -> None:
    """3KiB for all bodies at once: a second 2KiB body does not fit until the first is gone."""
    first, second, third = sending(2 * KIB), sending(2 * KIB), sending(2 * KIB)

    async def go() -> None:
        with addon_context(guard, caps) as tctx:
            await tctx.hook(HttpRequestHeadersHook(first), HttpRequestHeadersHook(second))
            state(first).holds.release_all()  # the first exchange ends
            await tctx.hook(HttpRequestHeadersHook(third))
            caps.sweeper.stop()

    asyncio.run(go())
    assert_passed(first)
    assert_passed(third)
    refused = assert_refused(second, 503, "proxy-busy")
    assert second.response is not None and second.response.headers["Retry-After"] == "1"
    assert refused.denial is not None and "max_buffered_bodies" in refused.denial.message
    assert caps.budget.in_use == 2 * KIB  # the third's


def test_a_body_that_does_not_arrive_in_time_is_answered_408(
    guard: DestinationGuard, caps: BodyCaps, clock: Clock
) -> None:
    flow = sending(KIB)
    flow.request.timestamp_end = None  # its body is still trickling in

    async def go() -> None:
        with addon_context(guard, caps) as tctx:
            await tctx.hook(HttpRequestHeadersHook(flow))
            clock.now += 4.9
            caps.sweeper.sweep()
            assert state(flow).denial is None  # not yet
            clock.now += 0.2
            caps.sweeper.sweep()
            caps.sweeper.stop()

    asyncio.run(go())
    denial = state(flow).denial  # answered on the sender's connection (none is live here)
    assert denial is not None and denial.reason == "request-timeout" and denial.status == 408
    assert "5s" in denial.message


def test_a_response_declared_larger_than_the_cap_kills_the_exchange(
    guard: DestinationGuard, caps: BodyCaps
) -> None:
    """Mid-response a new response would break the framing: the flow is killed and the error
    page carries the refusal."""
    flow = sending(10)
    run_hooks([guard, caps], HttpRequestHeadersHook(flow), HttpRequestHook(flow))
    responded(flow, body=b"y" * (KIB + 1))
    run_hooks([caps], HttpResponseHeadersHook(flow))
    denial = state(flow).denial
    assert denial is not None and denial.reason == "response-too-large" and denial.status == 502
    assert flow.error is not None  # killed


def test_a_response_larger_than_the_cap_is_replaced_by_a_502(
    guard: DestinationGuard, caps: BodyCaps
) -> None:
    flow = sending(10)
    run_hooks([guard, caps], HttpRequestHeadersHook(flow), HttpRequestHook(flow))
    response = responded(flow, body=b"y" * (KIB + 1)).response
    assert response is not None
    del response.headers["Content-Length"]  # read to the end of the connection
    run_hooks([caps], HttpResponseHeadersHook(flow), HttpResponseHook(flow))
    assert_refused(flow, 502, "response-too-large")
    assert flow.error is None


def test_a_response_within_the_cap_is_left_alone(guard: DestinationGuard, caps: BodyCaps) -> None:
    flow = sending(10)
    run_hooks([guard, caps], HttpRequestHeadersHook(flow), HttpRequestHook(flow))
    responded(flow, body=b"y" * KIB)
    run_hooks([caps], HttpResponseHeadersHook(flow), HttpResponseHook(flow))
    assert_passed(flow)
    assert flow.response is not None and flow.response.status_code == 200


def test_an_exchange_the_guard_refused_is_not_judged_again(
    caps: BodyCaps, guard: DestinationGuard
) -> None:
    flow = request_to("127.0.0.1", 8080, body=b"x" * (2 * KIB + 1))
    run_hooks([guard, caps], HttpRequestHeadersHook(flow), HttpRequestHook(flow))
    assert_refused(flow, 403, "address-blocked")  # the first refusal stands
    assert caps.budget.in_use == 0
