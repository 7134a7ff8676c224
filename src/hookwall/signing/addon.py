"""RequestSigning: sign each request for its destination, on the exact bytes sent upstream.

Runs in the ``request`` hook (the body is complete) and is registered after every addon that
modifies requests, so the signature covers what the receiver gets. Signature headers the
sender set itself are removed first, so a sender cannot forge or confuse the receiver. A
request that cannot be signed is refused (``signing-failed``), never sent unsigned.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from mitmproxy import http

from hookwall.core.denials import Denial, Reason
from hookwall.deliveries.correlation import id_headers, webhook_id
from hookwall.flow.respond import deny
from hookwall.flow.state import FlowState, state_of
from hookwall.policy import SigningSettings
from hookwall.signing.schemes import (
    SigningError,
    is_valid_message_id,
    new_message_id,
    sign_request,
)

logger = logging.getLogger(__name__)

# Sender-side signature headers of the Svix flavour of Standard Webhooks: never forwarded
# next to ours (the id is reused, the rest would confuse a receiver).
# Signature headers of Standard Webhooks under either prefix: a sender's own never reach the
# receiver, whichever prefix the destination's scheme writes (a receiver may read both).
_SIGNATURE_HEADERS_ANY_PREFIX = (
    "svix-signature",
    "svix-timestamp",
    "webhook-signature",
    "webhook-timestamp",
)
_ID_HEADERS = ("webhook-id", "svix-id")


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
        except SigningError as exc:
            deny(flow, state, Denial(Reason.SIGNING_FAILED, f"could not sign this request: {exc}"))
        except Exception as exc:
            logger.exception("signing failed")
            message = f"could not sign this request ({type(exc).__name__}); refused, not sent"
            deny(flow, state, Denial(Reason.SIGNING_FAILED, message))


class UnusableSenderId(ValueError):
    """The sender's own event id cannot be signed (e.g. contains '.'): its fault, not ours."""


def sign(flow: http.HTTPFlow, state: FlowState, signing: SigningSettings) -> None:
    headers = flow.request.headers
    scheme = signing.scheme
    signature_headers = [h for h in scheme.owned_headers if h not in _ID_HEADERS]
    if signing.keep_sender_signatures and any(h in headers for h in signature_headers):
        state.signed = "sender"
        return
    named = id_headers(state.decision.settings if state.decision else None)
    extra = named or ((signing.id_header,) if signing.id_header else ())
    sender_id = webhook_id(headers, extra, flow.request.raw_content)  # retries keep it
    if sender_id and scheme.name == "standard-webhooks" and not is_valid_message_id(sender_id):
        raise UnusableSenderId(
            "the webhook id this request carries cannot be signed (Standard Webhooks ids are "
            "1-256 visible ASCII characters without '.'); send another or none"
        )
    msg_id = sender_id or new_message_id()  # retries keep the sender's id
    # The sender's own signature headers go; one pass over the names instead of a lookup
    # per owned header (each is a scan of every header).
    present = {name.lower() for name in headers}
    for name in (*scheme.owned_headers, *_SIGNATURE_HEADERS_ANY_PREFIX):
        if name in present:
            headers.pop(name, None)
    result = sign_request(
        scheme,
        flow.request.raw_content or b"",
        msg_id=msg_id,
        timestamp=int(time.time()),
        keys=signing.keys,
        now=datetime.now(UTC),
    )
    for name, value in result.headers:
        headers.add(name, value)
    state.signed = scheme.name
    state.key_ids = result.key_ids
    # Only Standard Webhooks sends the id to the receiver; otherwise log the sender's own.
    state.webhook_id = msg_id if scheme.name == "standard-webhooks" else sender_id
