"""ExchangeLog: exactly one ``exchange`` event per HTTP exchange, allowed or denied.

The event is what operators query when a webhook went missing, so every path that ends an
exchange (response, error, refused CONNECT, failed TLS, passthrough tunnel) ends here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import connection, http, tls

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries import logs
from hookwall.deliveries.correlation import id_headers, webhook_id
from hookwall.deliveries.redaction import BUILT_IN, Rules, redact_event
from hookwall.flow import errorpages
from hookwall.flow.holds import Holds
from hookwall.flow.respond import deny
from hookwall.flow.state import METADATA_KEY, FlowState, TunnelState, state_of
from hookwall.forwarding.addons.lifecycle import settle_error
from hookwall.mitm.http1guard import Refusal
from hookwall.policy import Policy

logger = logging.getLogger(__name__)


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start) * 1000, 3)


# Receives each exchange event (the very dict that was logged) and its flow (None for a
# refused TLS handshake): the delivery store is fed from here.
ExchangeSink = Callable[[http.HTTPFlow | None, dict[str, Any]], None]
# Also receives each event, with the flood-control key the exchange drew from: the metrics.
ExchangeObserver = Callable[[dict[str, Any], str | None], None]


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

    # -- normal ends ---------------------------------------------------------------------------
    def response(self, flow: http.HTTPFlow) -> None:
        self._emit(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow)
        settle_error(flow)  # already settled by Lifecycle, unless the flow was never judged
        assert state.denial is not None
        # mitmproxy writes the error response itself, right after this hook; ours replaces it.
        errorpages.expect_error_response(flow.client_conn.id, state.request_id, state.denial)
        self._emit(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        errorpages.forget(client.id)

    def abandoned(self, flow: http.HTTPFlow) -> None:
        """mitmproxy dropped this flow without a response or error hook (Lifecycle)."""
        state = self._state(flow)
        if state.denial is None:
            state.denial = Denial(
                Reason.CLIENT_CLOSED, "the connection ended before the exchange did"
            )
        self._emit(flow)

    # -- CONNECT ---------------------------------------------------------------------------------
    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow)
        if state.denial is None:  # mitmproxy could not connect upstream
            message = flow.response.get_text(strict=False) if flow.response else ""
            state.error = message
            deny(
                flow,
                state,
                Denial(Reason.UPSTREAM_ERROR, f"cannot connect to the receiver: {message}"),
            )
        self._emit(flow)

    def http_connected(self, flow: http.HTTPFlow) -> None:
        """A passthrough tunnel is one exchange: logged when it ends, with its outcome."""
        tunnel = self.tunnels.get(flow.client_conn.id)
        if tunnel is not None and tunnel.passthrough:
            holds = self.connection_holds(flow.client_conn.id)
            holds.add("tunnel event", lambda: self._tunnel_ended(flow))

    def _tunnel_ended(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow)
        server = flow.server_conn
        if state.denial is None and server.error and server.timestamp_tcp_setup is None:
            state.error = server.error
            state.denial = Denial(
                Reason.UPSTREAM_ERROR, f"cannot connect to the receiver: {server.error}"
            )
        self._emit(flow, tls="passthrough")

    def tls_failed_client(self, data: tls.TlsData) -> None:
        """The sender refused our certificate: no request will follow, so this is the event.

        (A failed handshake with the receiver needs no event of its own: the request inside
        the tunnel is answered 502 ``tls-failed`` and logged like any other.)
        """
        tunnel = self.tunnels.get(data.context.client.id)
        decision = tunnel.decision if tunnel else None
        hint = (
            "the sender did not accept hookwall's certificate; install the CA printed by "
            "`hookwall ca --path` in the sender's trust store, or use the upgrade option"
        )
        event: dict[str, Any] = dict.fromkeys(logs.EXCHANGE_FIELDS)
        event |= {
            "request_id": tunnel.request_id if tunnel else None,
            "sender": tunnel.sender if tunnel else None,
            "client": _peer(data.context.client.peername),
            "method": "CONNECT",
            "host": decision.host if decision else None,
            "port": decision.port if decision else None,
            "rule": decision.rule if decision else None,
            "resolved_ips": decision.resolved_ips if decision else [],
            "decision": "deny",
            "reason": Reason.TLS_FAILED,
            "error": f"{hint} ({data.conn.error})" if data.conn.error else hint,
            "signed": False,
        }
        redact_event(event, _rules(tunnel.policy if tunnel else None))
        self.log.warning("exchange", **event)
        self._observe(event, None)
        if self.sink is not None:
            self.sink(None, event)

    def head_refused(self, refusal: Refusal) -> None:
        """A sender's head refused before it became a flow (``http1guard``): its one event."""
        tunnel = self.tunnels.get(refusal.client_id)
        decision = tunnel.decision if tunnel else None
        method, _, rest = refusal.start_line.rstrip(b"\r").partition(b" ")
        target = rest.rpartition(b" ")[0] or rest
        event: dict[str, Any] = dict.fromkeys(logs.EXCHANGE_FIELDS)
        event |= {
            "request_id": refusal.request_id,
            "sender": tunnel.sender if tunnel else None,
            "client": _peer(refusal.peername),
            "method": _text(method) or None,
            "url": _text(target) or None,
            "host": decision.host if decision else None,
            "port": decision.port if decision else None,
            "resolved_ips": [],
            "decision": "deny",
            "reason": refusal.denial.reason,
            "status": refusal.denial.status,
            "error": refusal.denial.message,
            "signed": False,
            "key_ids": [],
            "request_bytes": 0,
            "response_bytes": 0,
        }
        redact_event(event, _rules(tunnel.policy if tunnel else None))
        self.log.warning("exchange", **event)
        self._observe(event, None)
        if self.sink is not None:
            self.sink(None, event)

    # -- helpers -------------------------------------------------------------------------------
    def _state(self, flow: http.HTTPFlow) -> FlowState:
        state = state_of(flow)
        if state is None:  # a flow our guard never saw (e.g. unparseable request)
            tunnel = self.tunnels.get(flow.client_conn.id)
            state = FlowState(policy=tunnel.policy if tunnel else None, tunnel=tunnel)
            flow.metadata[METADATA_KEY] = state
        return state

    def _emit(self, flow: http.HTTPFlow, **extra: Any) -> None:
        state = self._state(flow)
        if state.logged:
            return
        state.logged = True
        # Redacted once, here: the log line and the store row are this same dict.
        event = redact_event(exchange_fields(flow, state) | extra, _rules(state.policy))
        self.log.info("exchange", **event)
        self._observe(event, state.limit_key)
        if self.sink is not None:
            self.sink(flow, event)

    def _observe(self, event: dict[str, Any], limit_key: str | None) -> None:
        if self.observer is None:
            return
        try:
            self.observer(event, limit_key)
        except Exception:  # metrics never cost a delivery or its log line
            logger.exception("metrics observer failed")


def _rules(policy: Policy | None) -> Rules:
    """The redaction rules of the exchange's policy snapshot (its ``logging.redact``)."""
    return policy.logging.redact if policy is not None else BUILT_IN


def _text(raw: bytes, limit: int = 200) -> str:
    """Hostile bytes from a refused head, printable and bounded, for the log and the store."""
    return raw[:limit].decode("ascii", "backslashreplace").encode("unicode_escape").decode()


def _peer(address: Any) -> str | None:
    return f"{address[0]}:{address[1]}" if address else None


def exchange_fields(flow: http.HTTPFlow, state: FlowState) -> dict[str, Any]:
    """The documented fields of one exchange event (DESIGN.md, "Log events")."""
    request, response, server = flow.request, flow.response, flow.server_conn
    decision = state.decision
    denial = state.denial
    connected = server.timestamp_tcp_setup is not None and server.peername is not None
    opened_for_us = connected and (server.timestamp_start or 0) >= request.timestamp_start
    return {
        "request_id": state.request_id,
        "sender": state.sender,
        "attempted_sender": state.attempted_sender,  # a configured name that failed (never a token)
        "client": _peer(flow.client_conn.peername),
        "method": request.method,
        "url": state.original_url or _safe_url(flow),
        "host": decision.host if decision else request.pretty_host,
        "port": decision.port if decision else request.port,
        "rule": decision.rule if decision else None,
        "resolved_ips": decision.resolved_ips if decision else [],
        "peer_ip": server.peername[0] if connected and server.peername else None,
        "decision": "deny" if denial else "allow",
        "reason": denial.reason if denial else None,
        **_would_deny(state),
        "status": _status(flow, state),
        # What the sender was told, word for word; the low-level detail only when it was not
        # refused (the denial's message already carries it when it matters).
        "error": denial.message if denial else state.error,
        "webhook_id": state.webhook_id
        or webhook_id(
            request.headers,
            id_headers(decision.settings if decision else None),
            request.raw_content,
        ),
        "signed": state.signed or False,
        "key_ids": list(state.key_ids),
        "redirect": state.redirect,
        "hop": state.hop,
        "attempt": state.attempt,
        "replay_of": state.replay_of,
        "tls": "upgrade" if state.upgraded else None,
        "queue_ms": state.queue_ms,
        "dns_ms": round(decision.dns_ms, 3) if decision and decision.dns_ms is not None else None,
        "connect_ms": _ms(server.timestamp_start, server.timestamp_tcp_setup)
        if opened_for_us
        else None,
        "ttfb_ms": _ms(request.timestamp_end, response.timestamp_start)
        if response and not denial
        else None,
        "duration_ms": _ms(
            request.timestamp_start,
            (response.timestamp_end if response else None) or time.time(),
        ),
        "request_bytes": len(request.raw_content or b""),
        "response_bytes": len(response.raw_content or b"") if response else 0,
    }


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


def _safe_url(flow: http.HTTPFlow) -> str:
    """The request URL without userinfo (mitmproxy never keeps it, but be explicit)."""
    text = flow.request.pretty_url
    scheme, sep, rest = text.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


def _would_deny(state: FlowState) -> dict[str, Any]:
    """Report-only access verdicts (``enforce: false``): what would have been refused, and why."""
    verdicts = [*state.would_deny, *(state.decision.would_deny if state.decision else ())]
    return {
        "would_deny": verdicts[0][0] if verdicts else None,
        "would_deny_message": "; ".join(message for _, message in verdicts) or None,
    }
