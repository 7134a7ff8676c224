"""Lifecycle: start-up facts, the life of every exchange, and graceful shutdown.

- Learns our real listening addresses once mitmproxy is up (``--listen 127.0.0.1:0`` binds a
  port only then) so the guard can refuse the proxy itself, and logs ``proxy_started``, the
  event scripts and tests wait on. One of them is the internal listener: redirect hops and
  retries go through it, so it stays open while a drain closes the public one.
- Every exchange begins here (first ``requestheaders``/``http_connect`` handler that takes
  anything) and ends in ``ExchangeEnd``, the last handler of ``response``, ``error``,
  ``http_connected`` and ``http_connect_error``: only then has every addon finished with it
  (redirect hops and retries included), and everything it holds (``FlowState.holds``) is given
  back. When mitmproxy drops a flow without either hook (a crashed layer, a connection gone at
  the wrong moment), the end of its client connection ends it instead, with its exchange
  event: nothing an exchange took can outlive its connection.
- The outcome of a failed exchange is classified in the *first* ``error`` handler, so every
  later one (flood control's circuit, retries, the log) reads the same verdict.
- Counts exchanges in flight so a shutdown waits for exactly those, not for idle keep-alive
  connections; while draining, responses carry ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mitmproxy import connection, ctx, http
from mitmproxy.proxy.mode_servers import ServerInstance
from mitmproxy.proxy.mode_specs import ProxyMode

from hookwall.core import eventloop
from hookwall.core.denials import Denial, Reason
from hookwall.deliveries import logs
from hookwall.destinations.hostname import host_port
from hookwall.flow import errorpages
from hookwall.flow.holds import Holds
from hookwall.flow.respond import fail, refusal_bytes
from hookwall.flow.runtime import INTERNAL_HOST, Runtime
from hookwall.flow.state import FlowState, TunnelState, start_state, state_of

# The listener redirect hops and retries are sent to (loopback, a port of its own; with
# --workers, the one the supervisor reserved for this worker).
INTERNAL_MODE = f"regular@{INTERNAL_HOST}:0"

# Called for a flow mitmproxy dropped without a response or error hook, before its holds go.
Abandoned = Callable[[http.HTTPFlow], None]
# Called with a client connection's id and the exchange that ended, when it was the last one
# in flight on that connection.
Idle = Callable[[str, http.HTTPFlow], None]


class Lifecycle:
    def __init__(self, runtime: Runtime, tunnels: dict[str, TunnelState]) -> None:
        self.runtime = runtime
        self.tunnels = tunnels  # the guard's: a flow inside a tunnel keeps its CONNECT's policy
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        # client connection id -> flow id -> the flows that began and have not ended
        self.open: dict[str, dict[str, http.HTTPFlow]] = {}
        # client connection id -> what the connection itself holds (a passthrough tunnel's slot)
        self._connections: dict[str, Holds] = {}
        self.on_abandoned: list[Abandoned] = []
        self.on_client_idle: list[Idle] = []
        self.end = ExchangeEnd(self)
        self._internal: ServerInstance[ProxyMode] | None = None
        # Facts other parts add to proxy_started (e.g. the admin listener's address).
        self.started_fields: dict[str, object] = {}

    async def running(self) -> None:
        ps = ctx.master.addons.get("proxyserver")
        # Outside mitmproxy's ``mode`` option, so that a drain can close the public listeners
        # (``servers.update([])``) and leave this one serving the hops it waits for.
        mode = f"regular@{INTERNAL_HOST}:{self.runtime.internal_port}"
        self._internal = ServerInstance.make(mode, ps)
        await self._internal.start()
        self.runtime.internal_addrs[:] = [(h, p) for h, p, *_ in self._internal.listen_addrs]
        public = [(host, port) for host, port, *_ in ps.listen_addrs()]
        listeners = [
            {"mode": server.mode.type_name, "listen": host_port(host, port)}
            for server in ps.servers
            for host, port, *_ in server.listen_addrs
        ]
        for host, port in [*public, *self.runtime.internal_addrs]:
            self.runtime.self_addresses.add_listener(host, port)
        self.runtime.listen_addrs[:] = public
        policy = self.runtime.policy
        logs.get_logger().info(
            "proxy_started",
            listen=[host_port(h, p) for h, p in public],
            listeners=listeners,
            internal_listen=[host_port(h, p) for h, p in self.runtime.internal_addrs],
            policy=list(policy.sources),
            rules=len(policy.rules),
            dns_servers=self.runtime.resolver.servers,
            ca_cert=str(ctx.options.confdir) + "/mitmproxy-ca-cert.pem",
            event_loop=eventloop.running_loop_name(),
            **self.started_fields,
        )

    async def done(self) -> None:
        if self._internal is not None and self._internal.is_running:
            await self._internal.stop()

    # -- the life of a connection and of its exchanges ------------------------------------------
    def client_connected(self, client: connection.Client) -> None:
        self._connections[client.id] = Holds()

    def connection_holds(self, client_id: str) -> Holds:
        """What lives as long as this client connection; given back when it ends."""
        holds = self._connections.get(client_id)
        if holds is None:  # the connection has already ended: anything added is given back
            holds = Holds()
            holds.release_all()
        return holds

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._begin(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._begin(flow)

    def _begin(self, flow: http.HTTPFlow) -> None:
        tunnel = self.tunnels.get(flow.client_conn.id)
        state = start_state(flow, self.runtime.policy, tunnel)
        if flow.client_conn.id not in self._connections:
            # A hook that ran after its connection ended (mitmproxy runs hooks as tasks): the
            # exchange is over before it began (logged once), and whatever it takes later is
            # given back at once.
            for abandoned in self.on_abandoned:
                abandoned(flow)
            state.holds.release_all()
            return
        flows = self.open.setdefault(flow.client_conn.id, {})
        if flow.id in flows or state.holds.closed:
            return
        flows[flow.id] = flow
        self.inflight += 1
        self._idle.clear()
        state.holds.add("in-flight", self._one_less)  # the first taken: the last given back

    def _one_less(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    def error(self, flow: http.HTTPFlow) -> None:
        """First ``error`` handler: the verdict every later handler reads."""
        settle_error(flow)

    def finish(self, flow: http.HTTPFlow) -> None:
        """The exchange is over: give back everything it holds (idempotent)."""
        state = state_of(flow)
        if state is not None:
            state.holds.release_all()
        client_id = flow.client_conn.id
        flows = self.open.get(client_id)
        if flows is None or flows.pop(flow.id, None) is None:
            return
        if not flows:
            for listener in self.on_client_idle:
                listener(client_id, flow)

    def client_gone(self, client: connection.Client) -> None:
        """The connection ended: every exchange still open on it ends now, logged once."""
        flows = self.open.pop(client.id, {})
        for flow in list(flows.values()):
            state = state_of(flow)
            if state is not None and not state.holds.closed:
                for abandoned in self.on_abandoned:
                    abandoned(flow)
                state.holds.release_all()
        self._connections.pop(client.id, Holds()).release_all()

    def crashed(self, client_id: str, exc: BaseException) -> bytes | None:
        """A layer of this connection raised (``crashguard``): its open exchanges failed. The
        answer for the oldest one that has had no response yet, if the connection can take it."""
        final: bytes | None = None
        for flow in self.open.get(client_id, {}).values():
            state = state_of(flow)
            if state is None:
                continue
            message = (
                "hookwall could not process this exchange and closed the connection "
                f"({type(exc).__name__}: {exc})"
            )
            denial = state.denial or Denial(Reason.PROXY_ERROR, message)
            fail(state, denial, state.error or f"{type(exc).__name__}: {exc}")
            if final is None and flow.request.method != "CONNECT":
                final = refusal_bytes(state)
        return final

    def held_by(self, client_id: str) -> int:
        """Exchanges in flight on one client connection."""
        return len(self.open.get(client_id, ()))

    async def drained(self) -> None:
        """Return once no exchange is in flight (callers bound this with a timeout)."""
        self.draining = True
        await self._idle.wait()


class ExchangeEnd:
    """The last handler of every hook that ends an exchange, and of ``client_disconnected``."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def response(self, flow: http.HTTPFlow) -> None:
        # Here, not earlier: Redirects and Retries may replace the response after Lifecycle
        # saw it, and the one the sender gets must still say its connection closes.
        state = state_of(flow)
        closes = state is not None and state.closes_connection is not None
        if flow.response is not None and (self.lifecycle.draining or closes):
            flow.response.headers["Connection"] = "close"
        self.lifecycle.finish(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.lifecycle.finish(flow)

    def http_connected(self, flow: http.HTTPFlow) -> None:
        self.lifecycle.finish(flow)

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self.lifecycle.finish(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        self.lifecycle.client_gone(client)


def settle_error(flow: http.HTTPFlow) -> FlowState | None:
    """Classify a failed flow once: ``state.denial`` (ours, if we set one) and ``state.error``.

    When the denial is ours (a deadline closed the receiver's connection, a guard refused),
    mitmproxy's message is only the consequence ("server closed connection"): it is not kept,
    so the log and the store say what the sender was told."""
    state = state_of(flow)
    if state is None:
        return None
    message = flow.error.msg if flow.error else ""
    if state.denial is None:
        denial = errorpages.classify_error(message)
        if flow.request.timestamp_end is None and denial.reason is Reason.UPSTREAM_ERROR:
            denial = _sender_failed(message)  # the request never arrived whole: not the receiver
        fail(state, denial, message or None)
    return state


def _sender_failed(message: str) -> Denial:
    lowered = message.lower()
    if "closed" in lowered or "disconnect" in lowered:
        return Denial(
            Reason.CLIENT_CLOSED, "the sender closed the connection before its request ended"
        )
    return Denial(Reason.BAD_REQUEST, f"the sender's request could not be read: {message}")
