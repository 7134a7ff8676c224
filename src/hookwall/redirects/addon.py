"""Redirect policy at the proxy: a receiver's 3xx is refused, relayed, or followed.

- ``InternalHops`` (first in the addon order) recognises the hop requests hookwall sends
  through its own listener: they carry a per-process token, the delivery's request id, the
  hop number and the sender, so every hop is logged and limited as part of its delivery.
- ``Redirects`` (late in the ``response`` order, after the slot is returned) applies the
  destination's ``redirects`` policy. In ``follow`` mode each hop is a brand-new request
  through the proxy itself, so it is judged by exactly the same code as a first request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Literal

from mitmproxy import http

from hookwall.core.denials import Denial, Reason
from hookwall.core.headers import INTERNAL, REDIRECT_LOCATION
from hookwall.deliveries.redaction import BUILT_IN
from hookwall.flow.holds import stopped_if_released
from hookwall.flow.hopclient import HopResponse, send_through_proxy
from hookwall.flow.respond import deny, relay
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, attach_state, start_state, state_of
from hookwall.policy.model import Settings
from hookwall.redirects import Chain, RedirectDecision, decide_redirect
from hookwall.redirects.credentials import credentials_to_drop

logger = logging.getLogger(__name__)

# Hop denials that are about load, not policy: the sender should simply retry later.
_TRANSIENT = frozenset({429, 503, 504})
_NOT_COPIED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", INTERNAL.lower()}
)


def internal_request_headers(
    flow: http.HTTPFlow,
    state: FlowState,
    settings: Settings,
    runtime: Runtime,
    tag: str,
    drop: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """The headers of a request hookwall sends itself through its own listener (a redirect
    hop, a retry): the sender's, without framing, ``drop`` and the signature headers the
    destination's scheme writes (the request is signed again; the webhook id is kept), plus
    the marker ``InternalHops`` recognises (``tag``: ``hop=N`` or ``attempt=N``)."""
    owned = (
        set(settings.signing.scheme.owned_headers) - {"webhook-id"} if settings.signing else set()
    )
    headers = [
        (name, value)
        for name, value in flow.request.headers.items(multi=True)
        if name.lower() not in _NOT_COPIED
        and name.lower() not in owned
        and name.lower() not in drop
    ]
    marker = f"{runtime.internal_token} rid={state.request_id} {tag}"
    marker += f" signed={1 if state.signed else 0}"
    if state.sender:
        marker += f" sender={state.sender}"
    headers.append((INTERNAL, marker))
    return headers


def own_listener(runtime: Runtime) -> tuple[str, int]:
    """Where to send such a request: the internal listener (still open while draining)."""
    return runtime.internal_addrs[0]


class InternalHops:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        value = flow.request.headers.pop(INTERNAL, None)
        token, _, rest = (value or "").partition(" ")
        if value is None or not hmac.compare_digest(
            token.encode(), self.runtime.internal_token.encode()
        ):
            # A sender imitating us gains nothing: an ordinary request, or refused when it
            # came to the internal listener (which serves hookwall's own hops only).
            self._refuse_outsider(flow)
            return
        fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
        hop_state = FlowState(
            policy=self.runtime.policy,
            request_id=fields.get("rid", ""),
            hop=int(fields.get("hop", "0" if "attempt" in fields else "1")),
            attempt=int(fields.get("attempt", "1")),
            internal=True,
            chain_signed=fields.get("signed") == "1",
            sender=fields.get("sender") or None,
        )
        attach_state(flow, hop_state)  # the delivery's: before the exchange begins on it

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._refuse_outsider(flow)

    def _refuse_outsider(self, flow: http.HTTPFlow) -> None:
        if self.runtime.on_internal_listener(flow.client_conn):
            state = start_state(flow, self.runtime.policy, None)
            message = "this is hookwall's internal listener; send requests to its proxy port"
            deny(flow, state, Denial(Reason.BAD_REQUEST, message))

    def request(self, flow: http.HTTPFlow) -> None:
        """A signed delivery is never redirected to a target that would get it unsigned."""
        state = state_of(flow)
        if state is None or not state.chain_signed or state.denial or state.decision is None:
            return
        settings = state.decision.settings
        if settings is not None and settings.signing is None:
            deny(flow, state, Denial(
                Reason.REDIRECT_DENIED,
                f"the redirect target {state.decision.host} has no signing configured; a signed "
                "webhook is never delivered unsigned",
            ))  # fmt: skip


class Redirects:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def response(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or state.internal or state.decision is None or flow.response is None:
            return  # hops go back to the loop below unchanged; it decides
        if state.denial is not None or state.decision.settings is None:
            return
        try:
            with stopped_if_released(state.holds, "redirect hops"):  # the sender may leave
                await self._handle(flow, state)
        except Exception as exc:
            logger.exception("redirect handling failed")
            self._refuse(flow, state, None, f"hookwall failed following a redirect ({exc!r})")

    async def _handle(self, flow: http.HTTPFlow, state: FlowState) -> None:
        assert flow.response is not None and state.decision and state.decision.settings
        settings = state.decision.settings
        first = flow.response
        url = state.original_url or flow.request.pretty_url
        chain = Chain(origin_host=state.decision.host, visited=[url])
        method, body = flow.request.method, flow.request.raw_content or b""
        status, headers = first.status_code, first.headers
        final: HopResponse | None = None
        dropped: frozenset[str] = frozenset()  # once dropped, never sent again in this chain
        while True:
            decision = decide_redirect(
                settings.redirects, chain, url, method, status, headers.get("location")
            )
            if decision.action == "none":
                break
            _note_first(state, decision, first.status_code)
            if decision.action == "pass":
                return
            if decision.action == "deny":
                self._refuse(flow, state, decision.target, decision.message)
                return
            assert decision.target and decision.method
            chain.visited.append(decision.target)
            body = body if decision.keep_body else b""
            dropped |= credentials_to_drop(
                flow.request.headers.keys(),
                url,
                decision.target,
                keep_credentials=settings.redirects.keep_credentials,
                # the redaction rules name the credentials, the policy's additions included
                is_credential=(state.policy.logging.redact if state.policy else BUILT_IN).header,
            )
            hop = await self._send_hop(flow, state, decision, chain.hops, body, dropped)
            if hop.refusal is not None and hop.status not in _TRANSIENT:
                self._refuse(flow, state, decision.target, _hop_refusal(decision.target, hop))
                return
            final, url, method = hop, decision.target, decision.method
            status, headers = hop.status, http.Headers(hop.headers)
            if hop.refusal is not None:
                break  # a transient refusal of the hop goes back to the sender as it is
        if final is not None:
            if state.redirect is not None:
                state.redirect["hops"] = chain.hops
            relay(flow, state, final)  # the sender gets the last hop's answer

    async def _send_hop(
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        decision: RedirectDecision,
        hop: int,
        body: bytes,
        dropped: frozenset[str],
    ) -> HopResponse:
        assert state.decision and state.decision.settings and decision.target and decision.method
        settings = state.decision.settings
        drop = dropped if decision.keep_body else dropped | {"content-type"}
        headers = internal_request_headers(flow, state, settings, self.runtime, f"hop={hop}", drop)
        host, port = own_listener(self.runtime)
        # A hop may queue, connect and wait for its answer like any request; no longer.
        timeouts, limits = settings.timeouts, settings.limits.config
        async with asyncio.timeout(timeouts.connect + timeouts.response + limits.queue_timeout):
            return await send_through_proxy(
                (host, port),
                decision.method,
                decision.target,
                headers,
                body,
                max_body=settings.max_response_body,
            )

    @staticmethod
    def _refuse(flow: http.HTTPFlow, state: FlowState, target: str | None, message: str) -> None:
        also = {REDIRECT_LOCATION: target} if target else None
        deny(flow, state, Denial(Reason.REDIRECT_DENIED, message), also=also)
        if state.redirect is not None:
            state.redirect["action"] = "denied"


def _note_first(state: FlowState, decision: RedirectDecision, status: int) -> None:
    """What was done with the receiver's first redirect (the exchange event's ``redirect``)."""
    if state.redirect is None:
        action: Literal["followed", "passed", "denied"] = "denied"
        if decision.action in ("follow", "pass"):
            action = "followed" if decision.action == "follow" else "passed"
        state.redirect = {"status": status, "location": decision.target, "action": action}


def _hop_refusal(target: str, hop: HopResponse) -> str:
    """'the redirect to X was refused: address-blocked: 127.0.0.1 is in ...'"""
    try:
        detail = str(json.loads(hop.body).get("message", ""))
    except (ValueError, AttributeError):
        detail = ""
    reason = hop.refusal
    return f"the redirect to {target} was refused: {reason}" + (f": {detail}" if detail else "")
