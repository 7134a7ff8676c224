"""Stripe's webhook signature: ``Stripe-Signature`` over the timestamp and the body."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hookwall.signing.keys import SigningKey
from hookwall.signing.schemes.base import check_keys, check_timestamp, hmac_digest


@dataclass(frozen=True)
class Stripe:
    """``Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...]`` over ``"<ts>." + body``."""

    name: ClassVar[str] = "stripe"

    @property
    def owned_headers(self) -> tuple[str, ...]:
        return ("stripe-signature",)

    def sign(
        self, body: bytes, *, msg_id: str, timestamp: int, keys: Sequence[SigningKey]
    ) -> list[tuple[str, str]]:
        check_keys(self.name, keys, ("hmac-sha256",))
        ts = check_timestamp(self.name, timestamp)
        content = f"{ts}.".encode("ascii") + body
        parts = [f"t={ts}"] + [
            f"v1={hmac_digest(k.material, content, 'sha256').hex()}" for k in keys
        ]
        return [("Stripe-Signature", ",".join(parts))]
