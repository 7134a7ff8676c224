"""Standard Webhooks v1.0.0 (also Svix): the scheme, and the message ids it signs.

``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1`` HMAC-SHA256, ``v1a``
Ed25519) over ``"<id>.<timestamp>." + body``; ``is_valid_message_id`` says whether an id a
sender brings can be signed, ``new_message_id`` mints one when it brings none.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hookwall.core import ids
from hookwall.signing.keys import SigningKey
from hookwall.signing.schemes.base import (
    SigningError,
    check_choice,
    check_keys,
    check_timestamp,
    hmac_digest,
    is_token,
)


@dataclass(frozen=True)
class StandardWebhooks:
    """Standard Webhooks v1.0.0 (``v1`` HMAC-SHA256, ``v1a`` Ed25519); also Svix.

    ``header_prefix="svix"`` writes ``svix-id``/``svix-timestamp``/``svix-signature``
    (same content and signatures) for receivers built on Svix's libraries.
    """

    header_prefix: Literal["webhook", "svix"] = "webhook"

    name: ClassVar[str] = "standard-webhooks"

    def __post_init__(self) -> None:
        check_choice("header_prefix", self.header_prefix, ("webhook", "svix"))

    @property
    def owned_headers(self) -> tuple[str, ...]:
        p = self.header_prefix
        return (f"{p}-id", f"{p}-timestamp", f"{p}-signature")

    def sign(
        self, body: bytes, *, msg_id: str, timestamp: int, keys: Sequence[SigningKey]
    ) -> list[tuple[str, str]]:
        check_keys(self.name, keys, ("hmac-sha256", "ed25519"))
        if not is_valid_message_id(msg_id):
            raise SigningError(
                f"{self.name}: the message id must be non-empty visible ASCII "
                "(letters, digits, '_', '-', ...) without '.'"
            )
        ts = check_timestamp(self.name, timestamp)
        content = f"{msg_id}.{ts}.".encode("ascii") + body
        signatures: list[str] = []
        for key in keys:
            if key.algorithm == "ed25519":
                raw = Ed25519PrivateKey.from_private_bytes(key.material).sign(content)
                version = "v1a"
            else:
                raw = hmac_digest(key.material, content, "sha256")
                version = "v1"
            signatures.append(f"{version},{base64.b64encode(raw).decode('ascii')}")
        id_header, ts_header, sig_header = self.owned_headers
        return [(id_header, msg_id), (ts_header, ts), (sig_header, " ".join(signatures))]


def is_valid_message_id(msg_id: object) -> bool:
    """Whether ``msg_id`` can be a Standard Webhooks ``webhook-id``: non-empty, at most 256
    visible ASCII token characters, no ``.`` (the signed content's separator).

    For a proxy that passes on a sender's own id (stable across the sender's retries) rather
    than minting one with :func:`new_message_id`.
    """
    return (
        isinstance(msg_id, str)
        and 0 < len(msg_id) <= 256
        and msg_id.isascii()
        and is_token(msg_id)
        and "." not in msg_id
    )


def new_message_id() -> str:
    """``msg_`` + 24 base62 characters, time-ordered (``hookwall.core.ids``)."""
    return ids.message_id()
