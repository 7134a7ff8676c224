"""Deadlines: time limits mitmproxy does not have, so a hostile receiver cannot tie us up.

- ``timeouts.headers``: from the request being sent to the response headers;
- ``timeouts.response``: from the request being sent to the whole response (a receiver that
  trickles one byte a second is cut here); for a ``tls: passthrough`` tunnel, from its
  admission to its end: hookwall cannot see the requests inside, so the tunnel is one exchange;
- ``timeouts.connect`` is enforced where mitmproxy connects (``mitm/connect.py``);
- ``timeouts.body`` (the sender's request body) is ``BodyCaps``'; connection deadlines
  (head, idle) are ``ConnectionGuard``'s.

On expiry the receiver's connection is closed and the sender gets 504 ``response-timeout``.
Every timer is a hold of its exchange (or tunnel), so it is cancelled however that ends.
"""

from __future__ import annotations

import asyncio
from functools import partial

from mitmproxy import http

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries import logs
from hookwall.flow import conns
from hookwall.flow.respond import deny_when_failed
from hookwall.flow.state import FlowState, ResponseClocks, state_of
from hookwall.forwarding.addons.lifecycle import Lifecycle


class Deadlines:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    # -- per-request deadlines ------------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> None:
        """The request is complete, admitted and about to go upstream: start both clocks."""
        state = state_of(flow)
        if state is None or state.denial is not None or state.decision is None:
            return
        settings = state.decision.settings
        if settings is None:
            return
        loop = asyncio.get_running_loop()
        t = settings.timeouts
        state.clocks = ResponseClocks(
            headers=loop.call_later(t.headers, self._expire, flow, "response headers", t.headers),
            whole=loop.call_later(t.response, self._expire, flow, "whole response", t.response),
        )
        state.holds.add("deadlines", partial(self._stop, state))  # one hold for both

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is not None and state.clocks is not None:
            state.clocks.stop_headers()

    def response(self, flow: http.HTTPFlow) -> None:
        self._stop(state_of(flow))

    def error(self, flow: http.HTTPFlow) -> None:
        self._stop(state_of(flow))

    @staticmethod
    def _stop(state: FlowState | None) -> None:
        if state is not None and state.clocks is not None:
            clocks, state.clocks = state.clocks, None
            clocks.stop()

    def _expire(self, flow: http.HTTPFlow, what: str, seconds: float) -> None:
        state = state_of(flow)
        if state is None or not flow.live or flow.error is not None:
            return
        self._stop(state)
        message = f"the receiver did not send the {what} within {seconds:g}s"
        deny_when_failed(flow, state, Denial(Reason.RESPONSE_TIMEOUT, message))
        conns.close_server(flow.client_conn.id, flow.server_conn)

    # -- passthrough tunnels --------------------------------------------------------------------
    def http_connect(self, flow: http.HTTPFlow) -> None:
        """An admitted passthrough tunnel lives at most its destination's response timeout."""
        state = state_of(flow)
        if state is None or state.denial is not None or state.decision is None:
            return
        settings = state.decision.settings
        if settings is None or settings.tls != "passthrough":
            return
        seconds = settings.timeouts.response
        client_id, host = flow.client_conn.id, state.decision.host
        timer = asyncio.get_running_loop().call_later(
            seconds, self._end_tunnel, client_id, host, seconds
        )
        self.lifecycle.connection_holds(client_id).add("tunnel deadline", timer.cancel)

    @staticmethod
    def _end_tunnel(client_id: str, host: str, seconds: float) -> None:
        if conns.close_client(client_id):
            logs.get_logger().info(
                "tunnel_closed", reason="tunnel-timeout", host=host, timeout_s=seconds
            )
