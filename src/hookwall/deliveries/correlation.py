"""Which webhook event a request carries, so all attempts of one event can be linked.

Senders that follow a convention already send a stable event id; retries keep it:
``webhook-id`` (Standard Webhooks), ``svix-id`` (Svix), ``X-GitHub-Delivery`` (GitHub), a
header the policy names (``logging.id_header`` or ``signing.id_header``), or, for Stripe,
whose signature header carries no id, the event id in the JSON body (``{"id": "evt_..."}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hookwall.core.exchange import Exchange

if TYPE_CHECKING:
    from hookwall.policy import Settings

# In order of preference; names are lower-case.
ID_HEADERS: tuple[str, ...] = ("webhook-id", "svix-id", "x-github-delivery")

# Stripe event ids: "evt_" and base62 (test-mode and v2 "thin" ids look the same).
_STRIPE_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,250}")
_MAX_BODY_SCAN = 1024 * 1024  # bodies larger than this are not parsed for an id
_MAX_ID = 256


def webhook_id(exchange: Exchange, extra: Iterable[str] = ()) -> str | None:
    """The event id a request carries: the policy's own header first (``extra``), then the
    conventional ones, then the Stripe event id of a JSON body."""
    for name in (*extra, *ID_HEADERS):
        value = exchange.header(name)
        if value and value.strip():
            return value.strip()[:_MAX_ID]
    return stripe_event_id(exchange.body) if exchange.body else None


def stripe_event_id(body: bytes) -> str | None:
    """``evt_...`` when the body is a JSON object whose top-level ``id`` is a Stripe event id.

    Cheap for every other body: nothing is parsed unless ``"evt_`` occurs in it.
    """
    if len(body) > _MAX_BODY_SCAN or b'"evt_' not in body or body.lstrip()[:1] != b"{":
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = document.get("id") if isinstance(document, dict) else None
    if isinstance(value, str) and _STRIPE_EVENT_ID.fullmatch(value):
        return value
    return None


def id_headers(settings: Settings | None) -> tuple[str, ...]:
    """The event-id headers a destination's policy names (lower-case), most specific first."""
    if settings is None:
        return ()
    names = [settings.logging.id_header]
    if settings.signing is not None:
        names.append(settings.signing.id_header)
    return tuple(dict.fromkeys(name for name in names if name))
