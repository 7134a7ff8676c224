"""Lifecycle in process: an exchange ends exactly once, whichever end comes first.

Driven with mitmproxy's own test flows; the proxy-level attacks that exercise the same paths
are in tests/integration/test_hostile.py.
"""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.test import tflow

from hookwall.core.denials import Denial, Reason
from hookwall.destinations.resolver import Resolver
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import state_of
from hookwall.forwarding.addons.lifecycle import Lifecycle, settle_error
from hookwall.policy import load_default_policy


def make() -> tuple[Lifecycle, list[str]]:
    lifecycle = Lifecycle(Runtime(load_default_policy(), Resolver([("127.0.0.1", 9)])), {})
    seen: list[str] = []
    lifecycle.on_abandoned.append(lambda flow: seen.append(f"abandoned {flow.id}"))
    lifecycle.on_client_idle.append(lambda client_id, flow: seen.append(f"idle {flow.id}"))
    return lifecycle, seen


def begin(lifecycle: Lifecycle, flow: http.HTTPFlow, released: list[str]) -> None:
    lifecycle.client_connected(flow.client_conn)
    lifecycle.requestheaders(flow)
    state = state_of(flow)
    assert state is not None
    state.holds.add("slot", lambda: released.append("slot"))


def test_the_last_handler_ends_the_exchange_once() -> None:
    lifecycle, seen = make()
    flow, released = tflow.tflow(resp=True), list[str]()
    begin(lifecycle, flow, released)
    assert lifecycle.inflight == 1 and lifecycle.held_by(flow.client_conn.id) == 1
    assert released == [] and lifecycle.inflight == 1  # until the last handler
    lifecycle.end.response(flow)
    lifecycle.end.error(flow)  # a late second end changes nothing
    lifecycle.end.client_disconnected(flow.client_conn)
    assert released == ["slot"] and lifecycle.inflight == 0
    assert seen == [f"idle {flow.id}"]


def test_a_flow_mitmproxy_dropped_ends_with_its_connection() -> None:
    """Neither response nor error ran (a crashed layer): the connection's end is the end."""
    lifecycle, seen = make()
    flow, released = tflow.tflow(), list[str]()
    begin(lifecycle, flow, released)
    lifecycle.end.client_disconnected(flow.client_conn)
    assert released == ["slot"] and lifecycle.inflight == 0
    assert seen == [f"abandoned {flow.id}"]
    lifecycle.end.error(flow)  # mitmproxy's late error hook, if any, finds nothing to give back
    assert released == ["slot"] and lifecycle.inflight == 0


def test_a_crash_marks_the_open_exchange_and_answers_it() -> None:
    lifecycle, _ = make()
    flow, released = tflow.tflow(), list[str]()
    begin(lifecycle, flow, released)
    answer = lifecycle.crashed(flow.client_conn.id, NotImplementedError("HTTP trailers"))
    state = state_of(flow)
    assert state is not None and state.denial is not None
    assert state.denial.reason == "proxy-error" and answer is not None
    assert answer.startswith(b"HTTP/1.1 502 ") and state.request_id.encode() in answer


def test_a_connection_hold_lives_until_the_connection_ends() -> None:
    lifecycle, _ = make()
    flow, given = tflow.tflow(), list[int]()
    lifecycle.client_connected(flow.client_conn)
    lifecycle.connection_holds(flow.client_conn.id).add("tunnel slot", lambda: given.append(1))
    lifecycle.end.client_disconnected(flow.client_conn)
    assert given == [1]
    # Anything a late await adds for a connection that has gone is given back at once.
    lifecycle.connection_holds(flow.client_conn.id).add("late", lambda: given.append(2))
    assert given == [1, 2]


def test_errors_are_classified_once_and_first() -> None:
    flow = tflow.tflow(err=True)
    lifecycle, _ = make()
    lifecycle.requestheaders(flow)
    flow.error.msg = "[Errno 111] Connect call failed ('127.0.0.2', 9)"  # type: ignore[union-attr]
    state = settle_error(flow)
    assert state is not None and state.denial is not None
    assert state.denial.reason == "upstream-error"  # counted by the circuit breaker
    flow.request.timestamp_end = None  # the sender never finished its request
    state.denial = None
    flow.error.msg = "HTTP/1 protocol error: peer closed connection"  # type: ignore[union-attr]
    assert settle_error(flow).denial.reason == "client-closed"  # type: ignore[union-attr]


def test_our_own_verdict_is_not_overwritten_by_its_consequence() -> None:
    """A deadline closed the receiver's connection: mitmproxy then reports "server closed
    connection", but the exchange failed because of the timeout, as the sender is told."""
    flow = tflow.tflow(err=True)
    lifecycle, _ = make()
    lifecycle.requestheaders(flow)
    state = state_of(flow)
    assert state is not None
    state.denial = Denial(Reason.RESPONSE_TIMEOUT, "the receiver did not send the whole response")
    flow.error.msg = "Server closed connection"  # type: ignore[union-attr]
    assert settle_error(flow) is state
    assert state.denial.reason == "response-timeout" and state.error is None


def test_a_hook_that_runs_after_its_connection_ended_takes_nothing() -> None:
    """mitmproxy runs hooks as tasks: requestheaders may come after client_disconnected."""
    lifecycle, seen = make()
    flow, given = tflow.tflow(), list[str]()
    lifecycle.client_connected(flow.client_conn)
    lifecycle.end.client_disconnected(flow.client_conn)
    lifecycle.requestheaders(flow)
    state = state_of(flow)
    assert state is not None and lifecycle.inflight == 0 and not lifecycle.open
    state.holds.add("slot", lambda: given.append("slot"))  # a slot granted later
    assert given == ["slot"] and seen == [f"abandoned {flow.id}"]


def test_a_draining_proxy_closes_the_connection_of_the_response_the_sender_gets() -> None:
    """Redirects and Retries may replace the response after Lifecycle saw it: the header is
    set by the last handler, on the response that is sent."""
    lifecycle, _ = make()
    flow, released = tflow.tflow(resp=True), list[str]()
    begin(lifecycle, flow, released)
    lifecycle.draining = True
    flow.response = http.Response.make(200, b"the retried attempt's answer")
    lifecycle.end.response(flow)
    assert flow.response.headers["Connection"] == "close"
    assert released == ["slot"]
