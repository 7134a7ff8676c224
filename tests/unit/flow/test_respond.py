"""respond.py, the one writer of hookwall's answers: a refusal now, one mitmproxy's error
response carries, and an answer hookwall fetched itself (a redirect's last hop, a retry)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http._events import ErrorCode, ResponseProtocolError
from mitmproxy.test import tflow, tutils

from hookwall.core.denials import Denial, Reason
from hookwall.flow import errorpages
from hookwall.flow.hopclient import HopResponse
from hookwall.flow.respond import (
    deny,
    deny_when_failed,
    fail,
    is_own_response,
    refusal_bytes,
    relay,
    relay_when_failed,
)
from hookwall.flow.state import FlowState, start_state
from hookwall.mitm import errorpages as error_patch
from hookwall.policy import load_default_policy


def _state(flow: object) -> FlowState:
    return start_state(flow, load_default_policy(), None)  # type: ignore[arg-type]


def _error_response(client: object) -> list[commands.Command]:
    """What errorpages writes where mitmproxy would write its own error page."""
    server = SimpleNamespace(conn=client, response=None)
    event = ResponseProtocolError(1, "Server closed connection", ErrorCode.GENERIC_SERVER_ERROR)
    return list(error_patch._send(server, event))


def test_a_refusal_is_the_flows_response_and_its_own() -> None:
    flow = tflow.tflow()
    state = _state(flow)
    deny(flow, state, Denial(Reason.REDIRECT_DENIED, "no"), error="x", also={"X-Extra": "t"})
    assert flow.response is not None and flow.response.status_code == 502
    assert state.denial is not None and state.denial.reason is Reason.REDIRECT_DENIED
    assert state.error == "x" and is_own_response(flow)
    names = [name.lower() for name in flow.response.headers]
    assert names[-2:] == ["content-length", "x-extra"]  # added after the denial's own
    assert json.loads(flow.response.content or b"")["request_id"] == state.request_id
    flow.response = tutils.tresp()  # a receiver's answer is never taken for ours
    assert not is_own_response(flow)


def test_a_refusal_on_a_failing_flow_replaces_mitmproxys_error_page() -> None:
    flow = tflow.tflow()
    flow.client_conn.state = ConnectionState.OPEN
    state = _state(flow)
    deny_when_failed(flow, state, Denial(Reason.RESPONSE_TIMEOUT, "too slow"))
    assert flow.response is None and state.denial is not None
    send, close = _error_response(flow.client_conn)
    assert isinstance(send, commands.SendData) and isinstance(close, commands.CloseConnection)
    assert send.data.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert b"X-Hookwall-Reason: response-timeout\r\n" in send.data
    assert state.request_id.encode() in send.data
    assert flow.client_conn not in errorpages._refusals  # written once, then forgotten


def test_an_answer_hookwall_fetched_keeps_the_receivers_status_for_the_event() -> None:
    flow = tflow.tflow(resp=True)
    state = _state(flow)
    hop = HopResponse(201, [(b"Content-Type", b"text/plain")], b"created")
    relay(flow, state, hop)
    assert state.received_status == 200
    assert flow.response is not None and flow.response.status_code == 201
    assert flow.response.content == b"created" and not is_own_response(flow)


def test_after_a_failure_the_fetched_answer_is_written_instead() -> None:
    flow = tflow.tflow()
    flow.client_conn.state = ConnectionState.OPEN
    hop = HopResponse(200, [(b"Content-Length", b"99"), (b"X-A", b"1")], b"ok")
    relay_when_failed(flow, hop)
    send, _close = _error_response(flow.client_conn)
    assert isinstance(send, commands.SendData)
    assert send.data == (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    )


def test_a_recorded_verdict_renders_as_bytes_for_a_crashed_connection() -> None:
    state = FlowState(policy=None)
    assert refusal_bytes(state) is None
    fail(state, Denial(Reason.PROXY_ERROR, "crashed"), "NotImplementedError: trailers")
    answer = refusal_bytes(state)
    assert answer is not None and answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert state.error == "NotImplementedError: trailers"
