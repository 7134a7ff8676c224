"""RequestSigning: sign each request for its destination, on the exact bytes sent upstream.

Runs in the ``request`` hook (the body is complete) and is registered after every addon that
modifies requests, so the signature covers what the receiver gets. Signature headers the
sender set itself are removed first, so a sender cannot forge or confuse the receiver. A
request that cannot be signed is refused (``signing-failed``), never sent unsigned. What to
sign and how is ``signing/request.py``; this applies it to the flow.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mitmproxy import http

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries.correlation import id_headers
from hookwall.flow.exchange import exchange_of
from hookwall.flow.respond import deny
from hookwall.flow.state import FlowState, state_of
from hookwall.policy import SigningSettings
from hookwall.signing.request import UnusableSenderId, sign_exchange

logger = logging.getLogger(__name__)


class RequestSigning:
    def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or state.denial is not None or state.decision is None:
            return
        settings = state.decision.settings
        if settings is None or settings.signing is None:
            return
        try:
            sign(flow, state, settings.signing)
        except UnusableSenderId as exc:
            deny(flow, state, Denial(Reason.BAD_REQUEST, str(exc)))
        except Exception as exc:
            logger.exception("signing failed")
            message = f"could not sign this request ({type(exc).__name__}); refused, not sent"
            deny(flow, state, Denial(Reason.SIGNING_FAILED, message))


def sign(flow: http.HTTPFlow, state: FlowState, signing: SigningSettings) -> None:
    """Sign the flow's request as it stands now, or refuse it."""
    settings = state.decision.settings if state.decision else None
    signed = sign_exchange(exchange_of(flow, state), signing, id_headers(settings), _now())
    headers = flow.request.headers
    for name in signed.remove:
        headers.pop(name, None)
    if signed.failure is not None:
        message = f"could not sign this request: {signed.failure}"
        deny(flow, state, Denial(Reason.SIGNING_FAILED, message))
        return
    for name, value in signed.add:
        headers.add(name, value)
    state.signed = signed.scheme
    if signed.scheme != "sender":
        state.key_ids = signed.key_ids
        state.webhook_id = signed.webhook_id


def _now() -> datetime:
    return datetime.now(UTC)
