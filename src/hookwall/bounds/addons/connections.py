"""ConnectionGuard: what a sender's connection may hold, and for how long, before and between
exchanges. mitmproxy's own inactivity timeout counts bytes, so a sender trickling one byte a
second holds a connection forever, and it cuts a delivery still waiting for a slow receiver;
hookwall keeps mitmproxy's only as a backstop and enforces these itself:

- ``proxy.max_connections`` in all and ``proxy.max_connections_per_client`` per client
  address: a connection beyond either is closed at once (``client_refused``);
- ``proxy.head_timeout``: from a connection's start, and from the first byte of each later
  request, the request head must be complete in time; after a CONNECT, the TLS handshake and
  the first request inside it too. Credentials travel in the head, so an unauthenticated client
  holds a connection for at most this long, and after a 407 its next head is due within
  ``head_timeout`` again (no idle time). A late plain-HTTP head is answered 408;
- ``proxy.idle_timeout``: a connection with no exchange in flight is closed after this, however
  many bytes of an unfinished head trickle in; an exchange in flight never counts as idle (its
  own deadlines bound it). A passthrough tunnel is bounded by its destination's
  ``timeouts.response`` instead (``Deadlines``).

Connections to the internal listener (redirect hops and retries, from hookwall itself) are
capped separately, so senders cannot crowd them out.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from functools import partial

from mitmproxy import connection, http

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries import logs
from hookwall.flow import conns
from hookwall.flow.respond import refuse_connection
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import state_of
from hookwall.flow.sweep import Sweeper
from hookwall.forwarding.addons.lifecycle import Lifecycle


@dataclass(slots=True)
class _Conn:
    peer: str
    internal: bool
    waiting_for: str = ""  # "head", "handshake", "idle", "tunnel" or "" (an exchange runs)


class ConnectionGuard:
    def __init__(self, runtime: Runtime, lifecycle: Lifecycle, sweeper: Sweeper) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle
        self.sweeper = sweeper  # the deadlines: one dict write per exchange, no timers
        lifecycle.on_client_idle.append(self._idle)
        self._conns: dict[str, _Conn] = {}
        self._per_peer: Counter[str] = Counter()
        self._public = 0
        self._internal = 0
        self._logged_at: dict[str, float] = {}

    # -- admission ------------------------------------------------------------------------------
    def client_connected(self, client: connection.Client) -> None:
        proxy = self.runtime.policy.proxy
        peer = str((client.peername or ("-",))[0])
        internal = self.runtime.on_internal_listener(client)
        if internal:
            refused = "max-connections" if self._internal >= proxy.max_connections else None
        elif self._public >= proxy.max_connections:
            refused = "max-connections"
        elif self._per_peer[peer] >= proxy.max_connections_per_client:
            refused = "max-connections-per-client"
        else:
            refused = None
        if refused is not None:
            limit = (
                proxy.max_connections_per_client
                if refused == "max-connections-per-client"
                else proxy.max_connections
            )
            client.error = f"hookwall is at its limit of {limit} connections ({refused})"
            self._log("client_refused", reason=refused, limit=limit, client=peer)
            return
        state = _Conn(peer, internal)
        self._conns[client.id] = state
        if internal:
            self._internal += 1
        else:
            self._public += 1
            self._per_peer[peer] += 1
        self._arm(client.id, state, "head", proxy.head_timeout)

    def client_disconnected(self, client: connection.Client) -> None:
        state = self._conns.pop(client.id, None)
        if state is None:
            return
        self._disarm(client.id, state)
        if state.internal:
            self._internal -= 1
            return
        self._public -= 1
        self._per_peer[state.peer] -= 1
        if self._per_peer[state.peer] <= 0:
            del self._per_peer[state.peer]

    # -- deadlines ------------------------------------------------------------------------------
    def head_started(self, client_id: str) -> None:
        """The first byte of a new request head arrived (``http1guard``)."""
        state = self._conns.get(client_id)
        if state is not None and state.waiting_for == "idle":
            self._arm(client_id, state, "head", self.runtime.policy.proxy.head_timeout)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = self._conns.get(flow.client_conn.id)
        if state is not None:
            self._disarm(flow.client_conn.id, state)  # in flight: its own deadlines bound it

    def http_connect(self, flow: http.HTTPFlow) -> None:
        state = self._conns.get(flow.client_conn.id)
        if state is not None:  # the CONNECT is an exchange (it may wait for a tunnel's slot)
            self._disarm(flow.client_conn.id, state)

    def http_connected(self, flow: http.HTTPFlow) -> None:
        """The tunnel is open: a passthrough tunnel has its own deadline; in an intercepted one
        the TLS handshake and the first request must be complete within head_timeout."""
        state = self._conns.get(flow.client_conn.id)
        if state is None:
            return
        flow_state = state_of(flow)
        decision = flow_state.decision if flow_state else None
        settings = decision.settings if decision else None
        if settings is not None and settings.tls == "passthrough":
            self._disarm(flow.client_conn.id, state)
            state.waiting_for = "tunnel"
        else:
            seconds = self.runtime.policy.proxy.head_timeout
            self._arm(flow.client_conn.id, state, "handshake", seconds)

    def _idle(self, client_id: str, ended: http.HTTPFlow) -> None:
        """Lifecycle: the connection's last exchange in flight has ended. After refused
        credentials the sender gets no idle time: its next head is due within head_timeout."""
        state = self._conns.get(client_id)
        if state is None or state.waiting_for != "":
            return
        flow_state = state_of(ended)
        denial = flow_state.denial if flow_state is not None else None
        proxy = self.runtime.policy.proxy
        if denial is not None and denial.reason is Reason.AUTH_REQUIRED:
            self._arm(client_id, state, "head", proxy.head_timeout)
        else:
            self._arm(client_id, state, "idle", proxy.idle_timeout)

    def _arm(self, client_id: str, state: _Conn, what: str, seconds: float) -> None:
        state.waiting_for = what
        self.sweeper.set(client_id, seconds, partial(self._expire, client_id, what, seconds))

    def _disarm(self, client_id: str, state: _Conn) -> None:
        self.sweeper.clear(client_id)
        state.waiting_for = ""

    def _expire(self, client_id: str, what: str, seconds: float) -> None:
        state = self._conns.get(client_id)
        if state is None or state.waiting_for != what:
            return
        if what == "head":
            message = f"the request head did not arrive complete within {seconds:g}s"
            closed = refuse_connection(client_id, Denial(Reason.REQUEST_TIMEOUT, message))
        else:
            closed = conns.close_client(client_id)
        if closed:
            reason = {"head": "head-timeout", "handshake": "handshake-timeout"}.get(
                what, "idle-timeout"
            )
            if what != "idle":  # an idle keep-alive connection closing is routine
                self._log("client_closed", reason=reason, timeout_s=seconds, client=state.peer)

    def done(self) -> None:
        self.sweeper.stop()

    def _log(self, event: str, **fields: object) -> None:
        """At most one line a second per kind: a flood must not become a log flood."""
        key = f"{event}:{fields.get('reason')}"
        now = time.monotonic()
        if now - self._logged_at.get(key, 0.0) > 1.0:
            self._logged_at[key] = now
            logs.get_logger().warning(event, **fields)
