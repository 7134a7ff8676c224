"""The one writer of hookwall's answers: every refusal an addon makes, and every answer hookwall
fetched itself (a followed redirect's last hop, a retry), reach the sender through here.

A refusal is recorded on the flow's state (``FlowState.denial``, and mitmproxy's message in
``error`` where it matters) and answered in the one shape ``core/denials.py`` defines: as the
flow's response while the request is being handled, through mitmproxy's own error response
when the flow is about to fail (``flow/errorpages.py``), or written straight to the sender's
connection by one of our timers (``flow/conns.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from mitmproxy import http

from hookwall.core.denials import Denial
from hookwall.flow import conns, errorpages
from hookwall.flow.hopclient import HopResponse
from hookwall.flow.state import FlowState, state_of


def deny(
    flow: http.HTTPFlow,
    state: FlowState,
    denial: Denial,
    *,
    error: str | None = None,
    also: Mapping[str, str] | None = None,
) -> None:
    """Answer the flow ourselves: nothing (more) is sent upstream, and a receiver's answer is
    replaced. ``also``: headers added after the denial's own (a refused redirect's target)."""
    fail(state, denial, error)
    response = http.Response.make(
        denial.status, denial.body(state.request_id), denial.headers(state.request_id)
    )
    for name, value in (also or {}).items():
        response.headers[name] = value
    flow.response = state.own_response = response


def deny_when_failed(flow: http.HTTPFlow, state: FlowState, denial: Denial) -> None:
    """The flow is about to fail (killed, or its receiver's connection closed): mitmproxy's
    error response carries ``denial`` instead of its own page."""
    fail(state, denial)
    errorpages.expect_error_response(flow.client_conn, state.request_id, denial)


def refuse_inside_tls(flow: http.HTTPFlow, state: FlowState, denial: Denial) -> None:
    """A refused CONNECT whose refusal is answered inside the TLS session: the CONNECT keeps
    its verdict (every addon reads it as refused: no slot, no clock, no receiver connection),
    but gets no answer of ours, so mitmproxy accepts it (200) and the requests inside are
    answered with ``denial`` (``deny``)."""
    fail(state, denial)
    if flow.response is not None and flow.response is state.own_response:
        flow.response = None
    state.own_response = None


def refuse_and_close(flow: http.HTTPFlow, state: FlowState, denial: Denial) -> bool:
    """Answer now, outside any hook (a deadline), and close the sender's connection; the answer
    is written on plain HTTP only (inside TLS the connection just closes). False if gone."""
    fail(state, denial)
    return conns.refuse_and_close(flow.client_conn.id, denial, state.request_id)


def refuse_connection(client_id: str, denial: Denial) -> bool:
    """Refuse a connection that has no exchange yet (a request head that never arrived):
    answered like ``refuse_and_close``, with no request id. False if it is gone."""
    return conns.refuse_and_close(client_id, denial)


def fail(state: FlowState, denial: Denial, error: str | None = None) -> None:
    """Record the exchange's verdict without writing anything: mitmproxy writes its own answer
    (settled by ``errorpages``), or the connection is gone or closing. ``error``, when given,
    replaces the low-level detail."""
    state.denial = denial
    if error is not None:
        state.error = error


def refusal_bytes(state: FlowState) -> bytes | None:
    """The recorded denial as a complete HTTP/1.1 answer, for code that writes to the sender's
    connection itself (a crashed connection's last words); None without a denial."""
    denial = state.denial
    if denial is None:
        return None
    return errorpages.render(denial.status, denial, state.request_id)


def relay(flow: http.HTTPFlow, state: FlowState, answer: HopResponse) -> None:
    """The answer hookwall fetched replaces the receiver's; the receiver's own status is kept
    for the exchange event."""
    assert flow.response is not None
    received = flow.response
    state.received_status = received.status_code
    flow.response = http.Response.make(answer.status, answer.body, answer.headers)
    # ttfb_ms stays the receiver's own (deliveries/phases.py): the hops are events of their own.
    flow.response.timestamp_start = received.timestamp_start


def relay_when_failed(flow: http.HTTPFlow, answer: HopResponse) -> None:
    """The flow failed (a retry after a connect error or timeout): mitmproxy's error response
    is the answer hookwall fetched instead."""
    data = errorpages.render_answer(answer.status, answer.headers, answer.body)
    errorpages.expect_raw_response(flow.client_conn, data)


def is_own_response(flow: http.HTTPFlow) -> bool:
    """Whether the flow's response is a refusal hookwall wrote, not a receiver's answer."""
    if flow.response is None:
        return False
    state = state_of(flow)
    return state is not None and state.own_response is flow.response
