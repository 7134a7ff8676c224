"""Deadlines: time limits mitmproxy does not have, so a hostile receiver cannot tie us up.

- ``timeouts.headers``: from the request being sent to the response headers;
- ``timeouts.response``: from the request being sent to the whole response (a receiver that
  trickles one byte a second is cut here);
- ``timeouts.connect`` is enforced where mitmproxy connects (``proxy/connect.py``);
- idle client connections: mitmproxy's ``tcp_timeout``, set from ``proxy.idle_timeout``;
- ``proxy.max_connections``: concurrent client connections beyond it are closed at once.

On expiry the receiver's connection is closed and the sender gets 504 ``response-timeout``.
"""

from __future__ import annotations

import asyncio
import time

from mitmproxy import connection, ctx, http

from hookwall import logs
from hookwall.denials import Denial
from hookwall.proxy import errorpages
from hookwall.proxy.runtime import Runtime
from hookwall.proxy.state import state_of

TIMERS_KEY = "hookwall.timers"


class Deadlines:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.clients: set[str] = set()
        self._refused_logged_at = 0.0

    # -- per-request deadlines ------------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> None:
        """The request is complete and about to go upstream: start both clocks."""
        state = state_of(flow)
        if state is None or state.denial is not None or state.decision is None:
            return
        settings = state.decision.settings
        if settings is None:
            return
        loop = asyncio.get_running_loop()
        t = settings.timeouts
        flow.metadata[TIMERS_KEY] = {
            "headers": loop.call_later(
                t.headers, self._expire, flow, "response headers", t.headers
            ),
            "response": loop.call_later(
                t.response, self._expire, flow, "whole response", t.response
            ),
        }

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        timers = flow.metadata.get(TIMERS_KEY)
        if timers:
            timers.pop("headers").cancel()

    def response(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    @staticmethod
    def _cancel(flow: http.HTTPFlow) -> None:
        for timer in flow.metadata.pop(TIMERS_KEY, {}).values():
            timer.cancel()

    def _expire(self, flow: http.HTTPFlow, what: str, seconds: float) -> None:
        state = state_of(flow)
        if state is None or not flow.live or flow.error is not None:
            return
        self._cancel(flow)
        denial = Denial(
            "response-timeout", f"the receiver did not send the {what} within {seconds:g}s"
        )
        state.denial = denial
        errorpages.expect_error_response(flow.client_conn.id, state.request_id, denial)
        handler = ctx.master.addons.get("proxyserver").connections.get(flow.client_conn.id)
        if handler is not None and flow.server_conn in handler.transports:
            handler.close_connection(flow.server_conn)

    # -- client connections ---------------------------------------------------------------------
    def client_connected(self, client: connection.Client) -> None:
        limit = self.runtime.policy.proxy.max_connections
        if len(self.clients) >= limit:
            client.error = f"hookwall is at its limit of {limit} client connections"
            now = time.monotonic()
            if now - self._refused_logged_at > 1.0:  # at most one line a second under a flood
                self._refused_logged_at = now
                logs.get_logger().warning("client_refused", reason="max-connections", limit=limit)
            return
        self.clients.add(client.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self.clients.discard(client.id)
