"""SelfAnswer: hookwall answers requests for ``hookwall.invalid`` itself (``selfanswer/answer.py``
says what); nothing is resolved and no upstream connection is ever made for them.

Runs after AccessControl, so a sender without valid credentials gets the usual 407 (that is
what ``hookwall doctor`` needs to see), and before the DestinationGuard, which skips the flows
marked ``state.self_answered``: the name is never judged, resolved or connected to.

- Plain HTTP (``GET http://hookwall.invalid/whoami``): answered in ``requestheaders``; no
  destination is decided, so no slot, signature or deadline of any destination applies (they
  all read ``state.decision``), and nothing counts against any destination. A request body
  (there is no use for one) is bounded by the defaults' ``max_request_body`` and
  ``timeouts.body``, here.
- CONNECT ``hookwall.invalid:PORT``: the tunnel is opened with a ``TunnelState`` of its own
  (its sender is the CONNECT's, as for every tunnel: AccessControl reads it for the requests
  inside), intercepted with a certificate from hookwall's CA; the requests inside are answered
  like plain ones, with ``tls`` true. With ``connection_strategy: lazy`` mitmproxy connects
  upstream only for a request it forwards, and none is forwarded.
- A transparent listener sees the address the sender dialled, not the name: a plain request
  names hookwall.invalid in its ``Host`` header; a TLS connection's SNI becomes the CONNECT
  ``TransparentTls`` makes for it, answered as above. The address dialled is never connected.

Each answer ends its exchange like a receiver's answer: one exchange event (``decision:
allow``, ``reason: null``, the status hookwall answered), no ``X-Hookwall-Reason``.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import certs, http
from mitmproxy.addons import tlsconfig
from mitmproxy.net.http import url

from hookwall.bounds.bodies import content_length, expected_size, request_too_large
from hookwall.core.denials import Denial, Reason
from hookwall.deliveries.event import peer
from hookwall.destinations.decide import Decision
from hookwall.flow.exchange import exchange_of
from hookwall.flow.respond import deny, refuse_and_close
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, TunnelState, start_state, state_of
from hookwall.selfanswer.answer import NAME, Asker, OwnCA, answer, fingerprint, is_hookwall_name

logger = logging.getLogger(__name__)

_TUNNEL_MESSAGE = f"{NAME}: answered by hookwall itself, never resolved or connected to"


def _too_slow(flow: http.HTTPFlow, seconds: float) -> None:
    """The body of a request to hookwall.invalid did not arrive in time: 408, then close."""
    state = state_of(flow)
    if state is None or flow.request.timestamp_end is not None or not flow.live:
        return
    message = f"the request body did not arrive complete within {seconds:g}s"
    refuse_and_close(flow, state, Denial(Reason.REQUEST_TIMEOUT, message))


class SelfAnswer:
    def __init__(
        self,
        runtime: Runtime,
        tunnels: dict[str, TunnelState],
        tls: tlsconfig.TlsConfig | None = None,
    ) -> None:
        self.runtime = runtime
        self.tunnels = tunnels  # the guard's: client connection id -> its CONNECT
        self.tls = tls  # mitmproxy's TlsConfig: its certificate store holds hookwall's CA
        self._ca: tuple[certs.Cert, OwnCA] | None = None

    def http_connect(self, flow: http.HTTPFlow) -> None:
        state = start_state(flow, self.runtime.policy, None)
        if state.denial is not None or not is_hookwall_name(flow.request.host):
            return  # refused by access control (the 407 stands), or another destination
        state.self_answered = True
        # The tunnel's verdict, as the guard keeps one for every tunnel it opens: the requests
        # inside keep the CONNECT's sender and are answered here (``_for_hookwall``).
        decision = Decision(True, None, _TUNNEL_MESSAGE, NAME, flow.request.port)
        self.tunnels[flow.client_conn.id] = TunnelState(
            decision,
            state.policy,
            state.request_id,
            sender=state.sender,
            would_deny=tuple(state.would_deny),
        )

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        tunnel = self.tunnels.get(flow.client_conn.id)
        state = start_state(flow, self.runtime.policy, tunnel)
        if state.denial is not None:
            return  # refused by access control: the 407 (or 403) stands
        try:
            mine = self._for_hookwall(flow, state)
        except Exception:  # fail closed: answered (500) by hookwall, never judged or sent on
            logger.exception("recognising %s failed", NAME)
            mine = True
        if not mine:
            return
        state.self_answered = True
        if state.tunnel is not None and state.tunnel.policy is not self.runtime.policy:
            # The CONNECT was judged under a policy since reloaded: this answer still tells
            # its verdict, and the sender's next request opens a tunnel judged afresh.
            state.close_after("policy-reloaded")
        if not self._bound_body(flow, state):
            return
        try:
            asker = self._asker(flow, state)
            reply = answer(flow.request.method, flow.request.path, asker, self._own_ca())
            response = http.Response.make(reply.status, reply.body, dict(reply.headers))
        except Exception:
            logger.exception("answering %s failed", NAME)
            response = http.Response.make(500, b"", {"Cache-Control": "no-store"})
        if flow.request.method.upper() == "HEAD":
            response.raw_content = b""  # the GET's headers (Content-Length too), no body
        flow.response = response

    def _bound_body(self, flow: http.HTTPFlow, state: FlowState) -> bool:
        """No destination's body caps apply here (none was judged), so the defaults' do:
        a body declared too large is refused (413), one that trickles is cut after
        ``timeouts.body`` (408, and the connection closes). False: refused."""
        defaults = (state.policy or self.runtime.policy).defaults
        request = exchange_of(flow, state)
        declared = content_length(request.header("content-length"))
        cap = defaults.max_request_body
        if declared is not None and declared > cap:
            deny(flow, state, request_too_large(declared, cap))
            return False
        if expected_size(request, cap) > 0:
            seconds = defaults.timeouts.body
            timer = asyncio.get_running_loop().call_later(seconds, _too_slow, flow, seconds)
            state.holds.add("deadline: request body", timer.cancel)
        return True

    @staticmethod
    def _for_hookwall(flow: http.HTTPFlow, state: FlowState) -> bool:
        tunnel = state.tunnel
        if tunnel is not None:  # inside a CONNECT: the tunnel's target, whatever Host says
            return tunnel.decision.host == NAME and tunnel.decision.pinned_ip is None
        if is_hookwall_name(flow.request.host):
            return True
        # A transparent listener's request has the dialled address as its host: the name is
        # the Host header's (host[:port]).
        if flow.client_conn.proxy_mode.type_name == "regular" or not flow.request.host_header:
            return False
        try:
            name = url.parse_authority(flow.request.host_header, check=True)[0]
        except ValueError:
            return False  # not a host[:port]: the guard refuses it
        return is_hookwall_name(name)

    def _asker(self, flow: http.HTTPFlow, state: FlowState) -> Asker:
        policy = state.policy or self.runtime.policy
        return Asker(
            request_id=state.request_id,
            sender=state.sender,
            senders_required=bool(policy.senders),
            would_deny=tuple(str(reason) for reason, _ in state.would_deny),
            mode=flow.client_conn.proxy_mode.type_name,
            client=peer(flow.client_conn.peername),
            tls=flow.client_conn.tls_established,
        )

    def _own_ca(self) -> OwnCA | None:
        """hookwall's CA as mitmproxy signs with it (kept until its certificate store changes)."""
        store = self.tls.certstore if self.tls is not None else None
        if store is None:
            return None
        cert = store.default_ca
        if self._ca is None or self._ca[0] is not cert:
            self._ca = (cert, OwnCA(cert.to_pem(), fingerprint(cert.fingerprint())))
        return self._ca[1]
