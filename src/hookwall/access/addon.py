"""AccessControl: every request comes from a known sender, or hookwall answers it itself.

Runs right before the DestinationGuard, because which rule applies depends on the sender.

- CONNECT: the credentials are checked on the CONNECT; the sender is kept with the tunnel
  (the guard stores it in ``TunnelState``) and holds for every request inside, which carry
  no ``Proxy-Authorization`` of their own.
- Plain HTTP (and absolute-form ``https://`` requests): checked on each request.
- Redirect hops hookwall sends through itself are recognised earlier (``InternalHops``) and
  keep the sender of the delivery they belong to.

``407 auth-required`` (with ``Proxy-Authenticate``) for missing, malformed or wrong
credentials; ``403 sender-denied`` for a sender outside its ``clients``. A sender with
``enforce: false`` is let through and the exchange event says ``would_deny``. The header is
removed from the flow as soon as it is read (HopHeaders would strip it before forwarding
anyway), so it is never forwarded, logged or stored. Fails closed.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from hookwall.access.decide import authenticate, identify
from hookwall.core.denials import Denial, Reason
from hookwall.flow.exchange import exchange_of
from hookwall.flow.respond import deny
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, TunnelState, start_state, state_of
from hookwall.flow.transparent import is_transparent

logger = logging.getLogger(__name__)


class AccessControl:
    def __init__(self, runtime: Runtime, tunnels: dict[str, TunnelState]) -> None:
        self.runtime = runtime
        self.tunnels = tunnels  # the guard's: client connection id -> its CONNECT

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._judge(flow, self._start(flow, None))

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is not None and state.internal:
            return  # a redirect hop of hookwall's own: InternalHops set its sender
        tunnel = self.tunnels.get(flow.client_conn.id)
        state = self._start(flow, tunnel)
        if tunnel is not None:  # verified on the CONNECT
            state.sender = tunnel.sender
            state.would_deny.extend(tunnel.would_deny)
            return
        self._judge(flow, state)

    def _start(self, flow: http.HTTPFlow, tunnel: TunnelState | None) -> FlowState:
        return start_state(flow, self.runtime.policy, tunnel)

    def _judge(self, flow: http.HTTPFlow, state: FlowState) -> None:
        try:
            senders = (state.policy or self.runtime.policy).senders
            exchange = exchange_of(flow, state)
            # Read once, then gone: no later addon, log or store ever sees the credential.
            flow.request.headers.pop("proxy-authorization", None)
            transparent = is_transparent(flow.client_conn)
            result = identify(senders, exchange, self.runtime.default_sender, transparent)
            result = result or authenticate(senders, exchange)
            state.sender = result.sender
            state.attempted_sender = result.attempted
            state.would_deny.extend(result.would_deny)
            if result.denial is not None:
                deny(flow, state, result.denial)
                if (
                    result.denial.reason is Reason.AUTH_REQUIRED and not transparent
                ):  # no keep-alive without them
                    state.close_after("no-credentials")
        except Exception as exc:
            logger.exception("access control failed; denying")
            message = f"hookwall failed while checking proxy credentials ({type(exc).__name__})"
            deny(flow, state, Denial(Reason.INTERNAL_ERROR, message))
