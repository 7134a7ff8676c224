"""UpstreamPool: a bound on idle receiver connections, per sender connection and in all.

mitmproxy keeps every receiver connection a sender's connection opened, for reuse, for as long
as the sender's connection lives: one keep-alive connection that addressed 150 receivers pins
150 sockets. When a sender connection's last exchange ends, hookwall keeps at most
``proxy.max_idle_upstream_per_client`` of its idle receiver connections (the newest) and at
most ``proxy.max_idle_upstream`` across all senders (closing the longest idle first).

Only connections of senders with no exchange in flight are ever closed: mitmproxy picks the
connection a request reuses after its ``requestheaders`` hook, so a connection of a sender
with nothing in flight cannot be about to carry a request.
"""

from __future__ import annotations

from collections import OrderedDict

from mitmproxy import connection, http
from mitmproxy.proxy import server_hooks

from hookwall.flow import conns
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import TunnelState
from hookwall.forwarding.addons.lifecycle import Lifecycle


class UpstreamPool:
    def __init__(
        self, runtime: Runtime, lifecycle: Lifecycle, tunnels: dict[str, TunnelState]
    ) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle
        self.tunnels = tunnels
        lifecycle.on_client_idle.append(self._client_idle)
        # sender connection id -> its idle receiver connections, the longest idle sender first
        self._idle: OrderedDict[str, int] = OrderedDict()
        self.total = 0

    def _client_idle(self, client_id: str, _ended: http.HTTPFlow) -> None:
        tunnel = self.tunnels.get(client_id)
        if tunnel is not None and tunnel.passthrough:
            return  # a passthrough tunnel's one connection is the tunnel itself
        proxy = self.runtime.policy.proxy
        idle = conns.idle_servers(client_id)
        extra = len(idle) - proxy.max_idle_upstream_per_client
        for server in idle[: max(0, extra)]:
            conns.close_server(client_id, server)  # the longest idle go first
        kept = len(idle) - max(0, extra)
        self.total -= self._idle.pop(client_id, 0)  # re-inserted as the most recently idle
        if kept > 0:
            self._idle[client_id] = kept
            self.total += kept
        excess = self.total - proxy.max_idle_upstream
        for other in list(self._idle):
            if excess <= 0:
                break
            if other == client_id or self.lifecycle.held_by(other):
                continue
            for server in conns.idle_servers(other)[:excess]:
                excess -= conns.close_server(other, server)
            self._recount(other)
        if excess > 0:  # only this sender's own are left to close
            for server in conns.idle_servers(client_id)[:excess]:
                conns.close_server(client_id, server)
            self._recount(client_id)

    def _recount(self, client_id: str) -> None:
        count = len(conns.idle_servers(client_id))
        self.total += count - self._idle.get(client_id, 0)
        if count > 0:
            self._idle[client_id] = count  # an existing entry keeps its place
        else:
            self._idle.pop(client_id, None)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        client_id = flow.client_conn.id
        if client_id in self._idle:  # its connections may be reused now: not idle
            self.total -= self._idle.pop(client_id)

    def server_disconnected(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.client.id in self._idle:
            self._recount(data.client.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self.total -= self._idle.pop(client.id, 0)
