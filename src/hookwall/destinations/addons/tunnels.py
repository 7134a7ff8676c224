"""PassthroughTunnels: a reload judges every open ``tls: passthrough`` tunnel again.

An intercepted tunnel is judged again at its next request (``DestinationGuard``); a
passthrough tunnel has no request hookwall can see, so a reload that denies its host would
otherwise leave it carrying traffic until its deadline. After each swap this addon judges
every open one under the new policy (``tunnelcheck``) and closes, on both sides, each the new
policy would not open. Its CONNECT exchange event is then logged once, when the connection
ends, with the reason; its slot and deadline go back with the connection (``Lifecycle``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from mitmproxy import connection, http

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries import logs
from hookwall.destinations import decide as guard
from hookwall.destinations.tunnelcheck import sender_after_reload, tunnel_after_reload
from hookwall.flow import conns
from hookwall.flow.respond import fail
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import TunnelState, state_of
from hookwall.policy import Policy


class PassthroughTunnels:
    def __init__(self, runtime: Runtime, tunnels: dict[str, TunnelState]) -> None:
        self.runtime = runtime
        self.tunnels = tunnels  # the guard's: client connection id -> its CONNECT's verdict
        self._open: dict[str, http.HTTPFlow] = {}  # client id -> its passthrough CONNECT flow
        self._tasks: set[asyncio.Task[Any]] = set()

    def http_connected(self, flow: http.HTTPFlow) -> None:
        tunnel = self.tunnels.get(flow.client_conn.id)
        if tunnel is not None and tunnel.passthrough:
            self._open[flow.client_conn.id] = flow
            if tunnel.policy is not self.runtime.policy:  # a reload came while it opened
                self._spawn(self.runtime.policy)

    def client_disconnected(self, client: connection.Client) -> None:
        self._open.pop(client.id, None)

    def reloaded(self, old: Policy, new: Policy) -> None:
        """A ``PolicyReloader.on_swapped`` listener: judge the open tunnels off this call."""
        if self._open:
            self._spawn(new)

    def _spawn(self, policy: Policy) -> None:
        task = asyncio.get_running_loop().create_task(self.rejudge(policy))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def rejudge(self, policy: Policy) -> int:
        """Judge each open passthrough tunnel under ``policy``; the number closed."""
        closed = 0
        for client_id, flow in list(self._open.items()):
            if self.runtime.policy is not policy:
                break  # a newer reload judges them under its own policy
            tunnel = self.tunnels.get(client_id)
            if tunnel is None or tunnel.policy is policy:
                continue
            try:
                denial, decision = await self._judge(flow, tunnel, policy)
            except Exception as exc:  # fail closed: a tunnel we cannot judge is closed
                message = f"hookwall failed while judging this tunnel ({type(exc).__name__})"
                denial, decision = Denial(Reason.INTERNAL_ERROR, message), None
            if denial is None and decision is not None:  # adopted by the new policy
                tunnel.follow(decision, policy)
                continue
            state = state_of(flow)
            if state is not None and denial is not None:
                fail(state, denial)  # its exchange event, when the connection ends, says why
            if conns.close_client(client_id):
                closed += 1
                logs.get_logger().info(
                    "tunnel_closed",
                    reason="policy-reload",
                    denial=denial.reason if denial else None,
                    host=tunnel.decision.host,
                    port=tunnel.decision.port,
                    request_id=tunnel.request_id,
                    sender=tunnel.sender,
                )
        return closed

    async def _judge(
        self, flow: http.HTTPFlow, tunnel: TunnelState, policy: Policy
    ) -> tuple[Denial | None, guard.Decision | None]:
        """What closes the tunnel under ``policy`` (None: it goes on), and the new decision."""
        senders = tunnel.policy.senders if tunnel.policy else policy.senders
        before = senders.get(tunnel.sender) if tunnel.sender else None
        peer = flow.client_conn.peername
        client = str(peer[0]) if peer else None
        denial = sender_after_reload(before, policy.senders, tunnel.sender, client)
        if denial is not None:
            return denial, None
        old = tunnel.decision
        decision = await guard.decide(
            old.host,
            old.port,
            policy,
            self.runtime.resolver,
            self_addresses=self.runtime.self_addresses,
            sender=tunnel.sender,
        )
        return tunnel_after_reload(decision, old.pinned_ip), decision

    def done(self) -> None:
        for task in self._tasks:
            task.cancel()
