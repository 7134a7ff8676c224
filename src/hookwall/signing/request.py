"""Sign one request for its destination: what changes in its headers, and what is recorded.

Pure (the clock is a parameter): ``sign_exchange`` reads the request as it will be sent (a
neutral ``Exchange``) and says which of the sender's own signature headers go, which headers
are added, and what the exchange event records. The caller applies it (RequestSigning, in the
``request`` hook, after every addon that changes the request). A request that cannot be
signed is refused, never sent unsigned: ``Signed.failure`` says why (the sender's own
signature headers still go), and an event id that cannot be signed raises ``UnusableSenderId``
before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hookwall.core.exchange import Exchange
from hookwall.deliveries.correlation import webhook_id
from hookwall.signing.schemes import (
    SigningError,
    is_valid_message_id,
    new_message_id,
    sign_request,
)

if TYPE_CHECKING:
    from hookwall.policy import SigningSettings

# Signature headers of Standard Webhooks under either prefix: a sender's own never reach the
# receiver, whichever prefix the destination's scheme writes (a receiver may read both).
_SIGNATURE_HEADERS_ANY_PREFIX = (
    "svix-signature",
    "svix-timestamp",
    "webhook-signature",
    "webhook-timestamp",
)
# The event id headers: a sender's own id is kept (retries reuse it), so it is no signature.
_ID_HEADERS = ("webhook-id", "svix-id")


class UnusableSenderId(ValueError):
    """The sender's own event id cannot be signed (e.g. contains '.'): its fault, not ours."""


@dataclass(frozen=True, slots=True)
class Signed:
    """What signing does to one request, and what the exchange event says of it."""

    scheme: str  # the scheme that signed, or "sender" when the sender's signature was kept
    remove: tuple[str, ...] = ()  # the sender's own signature headers (lower-case names)
    add: tuple[tuple[str, str], ...] = ()
    key_ids: tuple[str, ...] = ()
    webhook_id: str | None = None  # the event id the event records, when there is one
    failure: str | None = None  # why it could not be signed (no usable key): refuse it


def sign_exchange(
    exchange: Exchange, signing: SigningSettings, id_headers: tuple[str, ...], now: datetime
) -> Signed:
    """Sign ``exchange`` with every active key; ``id_headers`` are the event-id headers its
    destination's policy names (``deliveries.correlation.id_headers``)."""
    scheme = signing.scheme
    signature_headers = [h for h in scheme.owned_headers if h not in _ID_HEADERS]
    if signing.keep_sender_signatures and any(exchange.has_header(h) for h in signature_headers):
        return Signed("sender")
    extra = id_headers or ((signing.id_header,) if signing.id_header else ())
    sender_id = webhook_id(exchange, extra)  # retries keep it
    if sender_id and scheme.name == "standard-webhooks" and not is_valid_message_id(sender_id):
        raise UnusableSenderId(
            "the webhook id this request carries cannot be signed (Standard Webhooks ids are "
            "1-256 visible ASCII characters without '.'); send another or none"
        )
    msg_id = sender_id or new_message_id()  # retries keep the sender's id
    present = exchange.header_names()
    owned = dict.fromkeys((*scheme.owned_headers, *_SIGNATURE_HEADERS_ANY_PREFIX))
    remove = tuple(name for name in owned if name in present)
    try:
        result = sign_request(
            scheme,
            exchange.body or b"",
            msg_id=msg_id,
            timestamp=int(now.timestamp()),
            keys=signing.keys,
            now=now,
        )
    except SigningError as exc:
        return Signed(scheme.name, remove, failure=str(exc))
    return Signed(
        scheme.name,
        remove,
        tuple(result.headers),
        result.key_ids,
        # Only Standard Webhooks sends the id to the receiver; otherwise log the sender's own.
        msg_id if scheme.name == "standard-webhooks" else sender_id,
    )
