"""ExchangeLog: exactly one ``exchange`` event per HTTP exchange, allowed or denied.

The event is what operators query when a webhook went missing, so every path that ends an
exchange (response, error, refused CONNECT, failed TLS, passthrough tunnel, a request head
refused before it became a flow) ends here.

A CONNECT refused inside TLS (``connect_refusals: inside-tls``, ``destinations/refusals.py``)
is one event too, whatever happens in its tunnel: the first request inside that is answered
with the refusal is the event (its method and URL, the status the sender got, the CONNECT's
request id and reason); the requests after it on that connection (pipelined) are answered
too but not logged again. When no request is answered with it (the sender refused hookwall's
certificate, sent nothing, or sent a head refused before it was read), the event is the
CONNECT's, logged when the connection ends, with no status and an error that says why the
sender never read the refusal. The event itself (``deliveries/event.py``) is
built from the flow's state by the small functions below, then redacted once: the log line,
the delivery store's row and the metrics all get that same mapping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mitmproxy import connection, http, tls

from hookwall.core.denials import Denial, Reason
from hookwall.core.librarymessages import Said, sender_tls
from hookwall.deliveries import logs, phases
from hookwall.deliveries.correlation import id_headers, webhook_id
from hookwall.deliveries.event import (
    ExchangeEvent,
    peer,
    request_line_parts,
    safe_url,
    would_deny,
)
from hookwall.deliveries.redaction import BUILT_IN, Rules, redact_event
from hookwall.destinations.decide import Decision
from hookwall.flow import conns, errorpages
from hookwall.flow.exchange import exchange_of
from hookwall.flow.headrefusal import HeadRefusal
from hookwall.flow.holds import Holds
from hookwall.flow.respond import deny, deny_when_failed, fail
from hookwall.flow.state import FlowState, TunnelState, attach_state, state_of
from hookwall.forwarding.addons.lifecycle import settle_error
from hookwall.policy import Policy

logger = logging.getLogger(__name__)

# Receives each exchange event (the very dict that was logged) and its flow (None for a
# refused TLS handshake): the delivery store is fed from here.
ExchangeSink = Callable[[http.HTTPFlow | None, dict[str, Any]], None]
# Also receives each event, with the flood-control key the exchange drew from: the metrics.
ExchangeObserver = Callable[[dict[str, Any], str | None], None]

_TLS_HINT = (
    "the sender did not accept hookwall's certificate; install the CA printed by "
    "`hookwall ca --path` in the sender's trust store, or use the upgrade option"
)
_NO_REQUEST = (
    "not read by the sender: it sent no request inside the tunnel before the connection ended"
)


@dataclass(slots=True)
class _RefusedTunnel:
    """A CONNECT refused inside TLS, until its one event is logged."""

    connect: http.HTTPFlow
    refusal: Denial
    logged: bool = False
    unseen: str = _NO_REQUEST  # why the sender never read the refusal, if it never did

    def is_the_event(self, state: FlowState) -> bool:
        """Whether this request inside is the refused delivery's event: the first one answered
        with the refusal. Any other answer inside (mitmproxy's own, for a request it could not
        read) is why the sender did not read the refusal, not an event."""
        if self.logged:
            return False
        denial = state.denial
        if denial != self.refusal:
            what = f"{denial.status} {denial.reason.value}" if denial else "no answer"
            self.unseen = (
                f"not read by the sender: its request inside the tunnel got {what} instead "
                f"(request id {state.request_id})"
            )
            return False
        self.logged = True
        return True


class ExchangeLog:
    def __init__(
        self,
        tunnels: dict[str, TunnelState],
        connection_holds: Callable[[str], Holds],
        sink: ExchangeSink | None = None,
        observer: ExchangeObserver | None = None,
    ) -> None:
        self.tunnels = tunnels
        self.connection_holds = connection_holds  # a tunnel's event waits for its end
        self.log = logs.get_logger()
        self.sink = sink
        self.observer = observer
        # client connection id -> its CONNECT refused inside TLS, until the event is logged
        self._refused: dict[str, _RefusedTunnel] = {}

    # -- normal ends ---------------------------------------------------------------------------
    def response(self, flow: http.HTTPFlow) -> None:
        self._emit(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow)
        settle_error(flow)  # already settled by Lifecycle, unless the flow was never judged
        assert state.denial is not None
        # mitmproxy writes the error response itself, right after this hook; ours replaces it.
        deny_when_failed(flow, state, state.denial)
        self._emit(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        errorpages.forget(client)  # no error page is pending for a connection that is gone

    def abandoned(self, flow: http.HTTPFlow) -> None:
        """mitmproxy dropped this flow without a response or error hook (Lifecycle)."""
        state = self._state(flow)
        if state.denial is None:
            message = "the connection ended before the exchange did"
            fail(state, Denial(Reason.CLIENT_CLOSED, message))
        self._emit(flow)

    # -- CONNECT ---------------------------------------------------------------------------------
    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow)
        if state.denial is None:  # mitmproxy could not connect upstream
            message = flow.response.get_text(strict=False) if flow.response else ""
            denial = Denial(Reason.UPSTREAM_ERROR, f"cannot connect to the receiver: {message}")
            deny(flow, state, denial, error=message)
        self._emit(flow)

    def http_connected(self, flow: http.HTTPFlow) -> None:
        """A passthrough tunnel is one exchange: logged when it ends, with its outcome."""
        tunnel = self.tunnels.get(flow.client_conn.id)
        if tunnel is not None and tunnel.passthrough:
            holds = self.connection_holds(flow.client_conn.id)
            holds.add("tunnel event", lambda: self._tunnel_ended(flow))
        elif tunnel is not None and tunnel.refusal is not None:
            self._refused_tunnel(flow, tunnel.refusal)

    def _refused_tunnel(self, flow: http.HTTPFlow, refusal: Denial) -> None:
        """A CONNECT refused inside TLS: its event is the first request answered inside, or,
        if there is none, the CONNECT's own once the connection ends."""
        client_id = flow.client_conn.id
        self._refused[client_id] = _RefusedTunnel(flow, refusal)
        holds = self.connection_holds(client_id)
        holds.add("refused tunnel event", lambda: self._refused_tunnel_ended(client_id))

    def _refused_tunnel_ended(self, client_id: str) -> None:
        refused = self._refused.pop(client_id, None)
        if refused is not None and not refused.logged:
            self._emit(refused.connect, unseen=refused.unseen)

    def _tunnel_ended(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow)
        server = flow.server_conn
        if state.denial is None and server.error and server.timestamp_tcp_setup is None:
            message = f"cannot connect to the receiver: {server.error}"
            fail(state, Denial(Reason.UPSTREAM_ERROR, message), server.error)
        self._emit(flow, tls="passthrough")

    def tls_failed_client(self, data: tls.TlsData) -> None:
        """The sender refused our certificate: no request will follow, so this is the event.

        (A failed handshake with the receiver needs no event of its own: the request inside
        the tunnel is answered 502 ``tls-failed`` and logged like any other.)
        """
        if conns.was_refused(data.context.client):
            return  # its refusal was the event (a redirected connection refused before TLS)
        said = sender_tls(data.conn.error) if data.conn.error else None
        refused = self._refused.get(data.context.client.id)
        if refused is not None:  # the refusal is the event, logged when the connection ends
            detail = f" ({said.what if said else data.conn.error})" if data.conn.error else ""
            refused.unseen = (
                "not read by the sender: it did not accept hookwall's certificate for this "
                "name; install the CA printed by `hookwall ca --path` in the sender's trust "
                f"store, or set connect_refusals: on-connect for this destination{detail}"
            )
            return
        tunnel = self.tunnels.get(data.context.client.id)
        decision = tunnel.decision if tunnel else None
        event = ExchangeEvent(
            request_id=tunnel.request_id if tunnel else None,
            sender=tunnel.sender if tunnel else None,
            client=peer(data.context.client.peername),
            method="CONNECT",
            host=decision.host if decision else None,
            port=decision.port if decision else None,
            rule=decision.rule if decision else None,
            resolved_ips=decision.resolved_ips if decision else [],
            decision="deny",
            reason=Reason.TLS_FAILED.value,
            error=_tls_failed(data.conn.error, said),
            signed=False,
        )
        self._publish(None, event, tunnel.policy if tunnel else None, None, warning=True)

    def head_refused(self, refusal: HeadRefusal) -> None:
        """A sender's head refused before it became a flow (``http1guard``): its one event."""
        refused = self._refused.get(refusal.client_id)
        if refused is not None:  # inside a refused tunnel: the tunnel's refusal is the event
            if not refused.logged:
                denial = refusal.denial
                refused.unseen = (
                    "not read by the sender: its request inside the tunnel was refused before "
                    f"it was read ({denial.status} {denial.reason.value}, request id "
                    f"{refusal.request_id})"
                )
            return
        tunnel = self.tunnels.get(refusal.client_id)
        decision = tunnel.decision if tunnel else None
        method, target = request_line_parts(refusal.start_line)
        event = ExchangeEvent(
            request_id=refusal.request_id,
            sender=tunnel.sender if tunnel else None,
            client=peer(refusal.peername),
            method=method,
            url=target,
            host=decision.host if decision else None,
            port=decision.port if decision else None,
            resolved_ips=[],
            decision="deny",
            reason=refusal.denial.reason.value,
            status=refusal.denial.status,
            error=refusal.denial.message,
            signed=False,
            key_ids=[],
            request_bytes=0,
            response_bytes=0,
        )
        self._publish(None, event, tunnel.policy if tunnel else None, None, warning=True)

    # -- helpers -------------------------------------------------------------------------------
    def _state(self, flow: http.HTTPFlow) -> FlowState:
        state = state_of(flow)
        if state is None:  # a flow our guard never saw (e.g. unparseable request)
            tunnel = self.tunnels.get(flow.client_conn.id)
            state = FlowState(policy=tunnel.policy if tunnel else None, tunnel=tunnel)
            attach_state(flow, state)
        return state

    def _emit(
        self,
        flow: http.HTTPFlow,
        tls: Literal["passthrough"] | None = None,
        *,
        unseen: str | None = None,
    ) -> None:
        """Log the flow's event once. ``unseen``: a refused tunnel's CONNECT whose refusal the
        sender never read (no status: it got none; the error says why)."""
        state = self._state(flow)
        if state.logged:
            return
        refused = self._refused.get(flow.client_conn.id)
        if refused is not None and flow is not refused.connect and not refused.is_the_event(state):
            state.logged = True  # inside a refused tunnel: answered, but its event is logged once
            return
        state.logged = True
        event = exchange_event(flow, state, tunnel=tls == "passthrough")
        if tls is not None:
            event.tls = tls
        if unseen is not None:
            event.status = None
            event.error = f"{event.error} ({unseen})" if event.error else unseen
        self._publish(flow, event, state.policy, state.limit_key)

    def _publish(
        self,
        flow: http.HTTPFlow | None,
        event: ExchangeEvent,
        policy: Policy | None,
        limit_key: str | None,
        *,
        warning: bool = False,
    ) -> None:
        # Redacted once, here: the log line, the store row and the metrics get this same dict.
        fields = redact_event(event.fields(), _rules(policy))
        (self.log.warning if warning else self.log.info)("exchange", **fields)
        self._observe(fields, limit_key)
        if self.sink is not None:
            self.sink(flow, fields)

    def _observe(self, event: dict[str, Any], limit_key: str | None) -> None:
        if self.observer is None:
            return
        try:
            self.observer(event, limit_key)
        except Exception:  # metrics never cost a delivery or its log line
            logger.exception("metrics observer failed")


def _tls_failed(error: str | None, said: Said | None) -> str:
    """Why a sender's handshake failed: mitmproxy's reason in hookwall's words when it is
    known (a TLS version is not the certificate), else the usual hint and its detail."""
    if said is not None:
        return said.sentence()
    return f"{_TLS_HINT} ({error})" if error else _TLS_HINT


def _rules(policy: Policy | None) -> Rules:
    """The redaction rules of the exchange's policy snapshot (its ``logging.redact``)."""
    return policy.logging.redact if policy is not None else BUILT_IN


# -- the exchange event of a flow ------------------------------------------------------------


def exchange_event(flow: http.HTTPFlow, state: FlowState, *, tunnel: bool = False) -> ExchangeEvent:
    """The documented fields of one exchange event (README.md, "Log events"); ``tunnel``: a
    passthrough tunnel's, logged when it closed."""
    request, decision, denial = flow.request, state.decision, state.denial
    first_verdict, verdict_messages = would_deny(
        [*state.would_deny, *(decision.would_deny if decision else ())]
    )
    timings = _timings(flow, state, tunnel=tunnel)
    return ExchangeEvent(
        request_id=state.request_id,
        sender=state.sender,
        attempted_sender=state.attempted_sender,
        client=peer(flow.client_conn.peername),
        method=request.method,
        url=state.original_url or safe_url(request.pretty_url),
        host=decision.host if decision else request.pretty_host,
        port=decision.port if decision else request.port,
        rule=decision.rule if decision else None,
        resolved_ips=decision.resolved_ips if decision else [],
        peer_ip=_peer_ip(flow),
        decision="deny" if denial else "allow",
        reason=denial.reason.value if denial else None,
        would_deny=first_verdict,
        would_deny_message=verdict_messages,
        status=_status(flow, state),
        # What the sender was told, word for word; the low-level detail only when it was not
        # refused (the denial's message already carries it when it matters).
        error=denial.message if denial else state.error,
        webhook_id=state.webhook_id or _sender_webhook_id(flow, state),
        signed=state.signed or False,
        key_ids=list(state.key_ids),
        redirect=state.redirect,
        hop=state.hop,
        attempt=state.attempt,
        replay_of=state.replay_of,
        tls="upgrade" if state.upgraded else None,
        queue_ms=state.queue_ms,
        dns_ms=_dns_ms(decision),
        connect_ms=timings.connect_ms,
        ttfb_ms=timings.ttfb_ms,
        duration_ms=timings.duration_ms,
        request_bytes=len(request.raw_content or b""),
        response_bytes=len(flow.response.raw_content or b"") if flow.response else 0,
    )


def _connected(server: connection.Server) -> bool:
    return server.timestamp_tcp_setup is not None and server.peername is not None


def _peer_ip(flow: http.HTTPFlow) -> str | None:
    server = flow.server_conn
    if not _connected(server) or server.peername is None:
        return None
    return str(server.peername[0])


def _timings(flow: http.HTTPFlow, state: FlowState, *, tunnel: bool = False) -> phases.Phases:
    """The event's connect_ms, ttfb_ms and duration_ms (``deliveries/phases.py`` says what
    each measures) from mitmproxy's timestamps of the flow and its receiver connection."""
    request, response, server = flow.request, flow.response, flow.server_conn
    connected = _connected(server)
    return phases.measure(
        phases.Timestamps(
            request_start=request.timestamp_start,
            request_end=request.timestamp_end,
            now=time.time(),
            queue_ms=state.queue_ms,
            connection_start=server.timestamp_start if connected else None,
            tcp_setup=server.timestamp_tcp_setup if connected else None,
            tls=server.tls,
            tls_setup=server.timestamp_tls_setup,
            response_start=response.timestamp_start if response else None,
            response_end=response.timestamp_end if response else None,
            answered=response is not None and state.denial is None,
            tunnel=tunnel,
        )
    )


def _dns_ms(decision: Decision | None) -> float | None:
    if decision is None or decision.dns_ms is None:
        return None
    return round(decision.dns_ms, 3)


def _sender_webhook_id(flow: http.HTTPFlow, state: FlowState) -> str | None:
    """The event id the sender's request carries, when signing did not record one."""
    settings = state.decision.settings if state.decision else None
    return webhook_id(exchange_of(flow, state), id_headers(settings))


def _status(flow: http.HTTPFlow, state: FlowState) -> int | None:
    """The status the sender got (the receiver's own when hookwall answered for it: a
    followed redirect, a retry). A failed flow's refusal replaced whatever head the receiver
    had sent (a 200 that then trickled past ``timeouts.response`` is a 504 to the sender)."""
    if state.received_status:
        return state.received_status
    denial = state.denial
    if denial is not None and (flow.error is not None or flow.response is None):
        return denial.status
    return flow.response.status_code if flow.response else None
