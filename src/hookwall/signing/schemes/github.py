"""GitHub's webhook signature: ``X-Hub-Signature-256`` over the raw body, no timestamp."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hookwall.signing.keys import SigningKey
from hookwall.signing.schemes.base import check_keys, hmac_digest


@dataclass(frozen=True)
class GitHub:
    """GitHub's ``X-Hub-Signature-256: sha256=<hex>`` over the raw body (no timestamp).

    GitHub has no list syntax: with several keys (rotation) the header is repeated, one
    line per key, and receivers must accept a match on any line. ``legacy_sha1`` adds
    ``X-Hub-Signature: sha1=<hex>`` lines computed with the same keys.
    """

    legacy_sha1: bool = False

    name: ClassVar[str] = "github"

    def __post_init__(self) -> None:
        if not isinstance(self.legacy_sha1, bool):
            raise ValueError("legacy_sha1 must be true or false")

    @property
    def owned_headers(self) -> tuple[str, ...]:
        return ("x-hub-signature-256", "x-hub-signature")

    def sign(
        self, body: bytes, *, msg_id: str, timestamp: int, keys: Sequence[SigningKey]
    ) -> list[tuple[str, str]]:
        check_keys(self.name, keys, ("hmac-sha256",))
        headers = [
            ("X-Hub-Signature-256", "sha256=" + hmac_digest(key.material, body, "sha256").hex())
            for key in keys
        ]
        if self.legacy_sha1:
            headers += [
                ("X-Hub-Signature", "sha1=" + hmac_digest(key.material, body, "sha1").hex())
                for key in keys
            ]
        return headers
