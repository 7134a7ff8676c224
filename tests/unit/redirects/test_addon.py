"""InternalHops and Redirects in process: a receiver's 3xx refused, relayed or followed, and
the hops hookwall sends through its own listener recognised there.

InternalHops is driven with test flows. Redirects follows a hop through hookwall's own
listener, which here is a live in-process mitmproxy (tests/unit/support/live.py) running the
real InternalHops, Lifecycle, DestinationGuard and HopHeaders in front of a receiver on
127.0.0.2: the hop is judged like any request, as in the proxy. The decision rules
themselves are tests/unit/redirects/test_redirects.py's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mitmproxy import http

from hookwall.core.headers import INTERNAL as INTERNAL_HEADER
from hookwall.core.headers import REDIRECT_LOCATION as LOCATION_HEADER
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import state_of
from hookwall.redirects.addon import InternalHops, Redirects
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
from tests.unit.support.live import Receiver, live_proxy, own_listener
from tests.unit.support.mitm import (
    HttpConnectHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    run_hooks,
)

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [127.0.0.3]
    network: {allow: [127.0.0.3/32]}
    redirects: {mode: follow, scope: any, max_hops: 2}
  - hosts: [127.0.0.4]
    network: {allow: [127.0.0.4/32]}
    redirects: {mode: pass}
  - hosts: [127.0.0.5]
    network: {allow: [127.0.0.5/32]}
    signing: {scheme: github, secrets: [env:HW_REDIRECT_SECRET]}
"""
FOLLOWS, PASSES, SIGNS = "127.0.0.3", "127.0.0.4", "127.0.0.5"


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("HW_REDIRECT_SECRET", "a secret for the redirect tests")
    return runtime_for(load(tmp_path, POLICY))


def redirected(host: str, location: str, status: int = 302) -> http.HTTPFlow:
    """A request to ``host`` whose receiver answered ``status`` with ``location``."""
    flow = request_to(host, 8080, method="GET", body=b"")
    flow.request.headers["Authorization"] = "Bearer the-senders-credential"
    flow.request.headers["X-Event"] = "invoice.paid"
    response = responded(flow, status, b"moved").response
    assert response is not None
    response.headers["Location"] = location
    return flow


# -- InternalHops --------------------------------------------------------------------------------


def test_a_hop_of_hookwalls_own_carries_its_deliverys_identity(runtime: Runtime) -> None:
    flow = request_to("127.0.0.2", 8080)
    marker = f"{runtime.internal_token} rid=req_1 hop=2 signed=1 sender=billing"
    flow.request.headers[INTERNAL_HEADER] = marker
    run_hooks([InternalHops(runtime)], HttpRequestHeadersHook(flow))
    found = assert_passed(flow)
    assert (found.request_id, found.hop, found.attempt) == ("req_1", 2, 1)
    assert found.internal and found.chain_signed and found.sender == "billing"
    assert INTERNAL_HEADER not in flow.request.headers


def test_a_retry_is_attempt_n_of_the_same_delivery(runtime: Runtime) -> None:
    flow = request_to("127.0.0.2", 8080)
    flow.request.headers[INTERNAL_HEADER] = f"{runtime.internal_token} rid=req_1 attempt=3"
    run_hooks([InternalHops(runtime)], HttpRequestHeadersHook(flow))
    found = state(flow)
    assert (found.hop, found.attempt, found.internal) == (0, 3, True)


@pytest.mark.parametrize("marker", ["not-the-token rid=req_1 hop=1", "", "rid=req_1"])
def test_a_sender_imitating_hookwall_gets_nothing_of_it(runtime: Runtime, marker: str) -> None:
    flow = request_to("127.0.0.2", 8080)
    flow.request.headers[INTERNAL_HEADER] = marker
    run_hooks([InternalHops(runtime)], HttpRequestHeadersHook(flow))
    assert state_of(flow) is None  # an ordinary request: the rest judge it
    assert INTERNAL_HEADER not in flow.request.headers


@pytest.mark.parametrize("method", ["POST", "CONNECT"])
def test_the_internal_listener_serves_hookwalls_own_hops_only(
    runtime: Runtime, method: str
) -> None:
    runtime.internal_addrs[:] = [("127.0.0.1", 7777)]
    flow = request_to("127.0.0.2", 8080) if method == "POST" else connect_to("127.0.0.2")
    flow.client_conn.sockname = ("127.0.0.1", 7777)
    hook = HttpRequestHeadersHook(flow) if method == "POST" else HttpConnectHook(flow)
    run_hooks([InternalHops(runtime)], hook)
    found = assert_refused(flow, 400, "bad-request")
    assert found.denial is not None and "internal listener" in found.denial.message


@pytest.mark.parametrize(("target", "why"), [("127.0.0.2", "redirect-denied"), (SIGNS, None)])
def test_a_signed_delivery_is_never_redirected_to_a_target_without_signing(
    runtime: Runtime, target: str, why: str | None
) -> None:
    flow = request_to(target, 8080)
    flow.request.headers[INTERNAL_HEADER] = f"{runtime.internal_token} rid=req_1 hop=1 signed=1"
    hops = InternalHops(runtime)
    run_hooks(
        [hops, DestinationGuard(runtime)], HttpRequestHeadersHook(flow), HttpRequestHook(flow)
    )
    if why is None:
        assert_passed(flow)
    else:
        found = assert_refused(flow, 502, why)
        assert found.denial is not None and "never delivered unsigned" in found.denial.message


# -- Redirects -----------------------------------------------------------------------------------


async def handled(runtime: Runtime, flow: http.HTTPFlow) -> None:
    """The flow judged by the guard, then its receiver's answer handled by Redirects, with
    hookwall's own listener (live, in process) in front of the receivers on 127.0.0.2."""
    async with live_proxy(*own_listener(runtime)) as proxy:
        runtime.internal_addrs[:] = [proxy.address]
        response = flow.response
        await DestinationGuard(runtime).requestheaders(flow)
        flow.response = response  # the receiver's answer, after the guard let it through
        await Redirects(runtime).response(flow)


def answered(runtime: Runtime, flow: http.HTTPFlow) -> http.HTTPFlow:
    asyncio.run(handled(runtime, flow))
    return flow


def test_by_default_a_redirect_is_refused_and_its_target_named(runtime: Runtime) -> None:
    flow = answered(runtime, redirected("127.0.0.2", "/moved"))
    found = assert_refused(flow, 502, "redirect-denied")
    assert flow.response is not None
    assert flow.response.headers[LOCATION_HEADER] == "http://127.0.0.2:8080/moved"
    assert found.redirect == {
        "status": 302,
        "location": "http://127.0.0.2:8080/moved",
        "action": "denied",
    }


def test_pass_relays_the_redirect_to_the_sender(runtime: Runtime) -> None:
    flow = answered(runtime, redirected(PASSES, "http://elsewhere.test/"))
    found = assert_passed(flow)
    assert flow.response is not None and flow.response.status_code == 302
    assert flow.response.headers["Location"] == "http://elsewhere.test/"
    assert found.redirect is not None and found.redirect["action"] == "passed"


def test_follow_sends_the_hop_through_hookwall_and_answers_with_its_response(
    runtime: Runtime,
) -> None:
    async def go() -> tuple[http.HTTPFlow, list[bytes]]:
        async with Receiver() as receiver:
            flow = redirected(FOLLOWS, f"http://{receiver.authority}/next")
            await handled(runtime, flow)
            return flow, receiver.heads

    flow, heads = asyncio.run(go())
    found = assert_passed(flow)
    assert flow.response is not None
    assert (flow.response.status_code, flow.response.content) == (200, b"ok")
    assert found.redirect is not None
    assert (found.redirect["action"], found.redirect["hops"]) == ("followed", 1)
    assert found.received_status == 302  # what the receiver said, for the exchange event
    (head,) = heads
    assert head.startswith(b"GET /next HTTP/1.1\r\n")
    lowered = head.lower()
    assert b"x-event: invoice.paid" in lowered  # the sender's headers travel on ...
    assert b"authorization" not in lowered  # ... but not its credentials, to another origin
    assert INTERNAL_HEADER.lower().encode() not in lowered  # hookwall's marker stops at itself


def test_a_hop_hookwall_refuses_refuses_the_delivery(runtime: Runtime) -> None:
    flow = answered(runtime, redirected(FOLLOWS, "http://127.0.0.1:8080/admin"))
    found = assert_refused(flow, 502, "redirect-denied")
    assert found.denial is not None
    assert found.denial.message.startswith(
        "the redirect to http://127.0.0.1:8080/admin was refused: address-blocked: "
    )
    assert flow.response is not None
    assert flow.response.headers[LOCATION_HEADER] == "http://127.0.0.1:8080/admin"
    assert found.redirect is not None and found.redirect["action"] == "denied"


def test_a_chain_longer_than_max_hops_is_refused(runtime: Runtime) -> None:
    async def go() -> tuple[http.HTTPFlow, int]:
        async with Receiver() as last:
            again = "HTTP/1.1 302 Found\r\nLocation: http://{}/{}\r\nContent-Length: 0\r\n\r\n"
            second = Receiver(again.format(last.authority, "end").encode())
            async with second:
                first = Receiver(again.format(second.authority, "two").encode())
                async with first:
                    flow = redirected(FOLLOWS, f"http://{first.authority}/one")
                    await handled(runtime, flow)
                    return flow, len(last.heads)

    flow, reached_last = asyncio.run(go())
    found = assert_refused(flow, 502, "redirect-denied")
    assert found.denial is not None and "more than 2 redirects" in found.denial.message
    assert reached_last == 0


def test_a_response_that_is_no_redirect_is_left_alone(runtime: Runtime) -> None:
    flow = answered(runtime, redirected(FOLLOWS, "/elsewhere", status=200))
    assert assert_passed(flow).redirect is None
    assert flow.response is not None and flow.response.status_code == 200


def test_a_hops_own_3xx_goes_back_to_the_loop_that_sent_it(runtime: Runtime) -> None:
    flow = redirected(FOLLOWS, "/elsewhere")
    flow.request.headers[INTERNAL_HEADER] = f"{runtime.internal_token} rid=req_1 hop=1"
    run_hooks([InternalHops(runtime)], HttpRequestHeadersHook(flow))
    asyncio.run(Redirects(runtime).response(flow))
    assert flow.response is not None and flow.response.status_code == 302
    assert state(flow).redirect is None
