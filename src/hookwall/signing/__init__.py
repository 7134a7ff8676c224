"""Webhook signing: hookwall signs on behalf of senders, so senders hold no secrets.

``keys`` turns configured secrets into :class:`SigningKey` objects and ``schemes`` (one
module per scheme family) computes the headers for each wire format: both pure (no I/O, no
clock, no mitmproxy). ``settings`` reads a destination's ``signing`` section; ``addon`` is the
only module that sees a mitmproxy flow.
"""

from hookwall.signing.keys import (
    SCHEMES,
    BadSecret,
    GeneratedKey,
    SigningKey,
    generate_key,
    key_fingerprint,
    parse_secret,
)
from hookwall.signing.schemes import (
    GenericHmac,
    GitHub,
    Scheme,
    SigningError,
    SignResult,
    StandardWebhooks,
    Stripe,
    is_valid_message_id,
    make_scheme,
    new_message_id,
    parse_secret_for,
    sign_request,
)

__all__ = [
    "SCHEMES",
    "BadSecret",
    "GeneratedKey",
    "GenericHmac",
    "GitHub",
    "Scheme",
    "SignResult",
    "SigningError",
    "SigningKey",
    "StandardWebhooks",
    "Stripe",
    "generate_key",
    "is_valid_message_id",
    "key_fingerprint",
    "make_scheme",
    "new_message_id",
    "parse_secret",
    "parse_secret_for",
    "sign_request",
]
