"""What every signature scheme is, the checks each makes on its inputs, and how one is called.

``Scheme`` is the protocol the proxy signs through; ``sign_request`` is its one entry point:
it picks the keys active at ``now`` and asks the scheme for its headers. The helpers below
are shared by the schemes so that they refuse bad keys and timestamps with the same words.
"""

from __future__ import annotations

import hmac
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hookwall.signing.keys import SigningKey

_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)


class SigningError(Exception):
    """The request cannot be signed; the caller refuses it. Never quotes secret material."""


class Scheme(Protocol):
    """What the proxy needs from a scheme (read-only attributes plus ``sign``)."""

    @property
    def name(self) -> str: ...

    @property
    def owned_headers(self) -> tuple[str, ...]:
        """Lower-case names of the headers ``sign`` writes; sender-set copies are removed."""
        ...

    def sign(
        self, body: bytes, *, msg_id: str, timestamp: int, keys: Sequence[SigningKey]
    ) -> list[tuple[str, str]]:
        """The headers to set, in order. ``keys``: non-empty, already filtered to active."""
        ...


@dataclass(frozen=True)
class SignResult:
    headers: list[tuple[str, str]]
    key_ids: tuple[str, ...]


def sign_request(
    scheme: Scheme,
    body: bytes,
    *,
    msg_id: str,
    timestamp: int,
    keys: Sequence[SigningKey],
    now: datetime,
) -> SignResult:
    """Sign with every key active at ``now`` (in the given order, duplicates once)."""
    if not keys:
        raise SigningError("no signing key is configured for this destination")
    active: list[SigningKey] = []
    seen: set[str] = set()
    for key in keys:
        if key.active(now) and key.key_id not in seen:
            seen.add(key.key_id)
            active.append(key)
    if not active:
        raise SigningError("every key of this destination has expired (not_after)")
    headers = scheme.sign(body, msg_id=msg_id, timestamp=timestamp, keys=active)
    return SignResult(headers=headers, key_ids=tuple(k.key_id for k in active))


# -- the checks and primitives the schemes share ---------------------------------------------


def check_keys(scheme: str, keys: Sequence[SigningKey], allowed: tuple[str, ...]) -> None:
    if not keys:
        raise SigningError(f"{scheme}: no signing key to sign with")
    for key in keys:
        if key.algorithm not in allowed:
            raise SigningError(
                f"{scheme}: key {key.key_id} is an {key.algorithm} key, "
                f"this scheme signs with {' or '.join(allowed)} keys"
            )


def check_timestamp(scheme: str, timestamp: int) -> str:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise SigningError(f"{scheme}: timestamp must be a non-negative integer (Unix seconds)")
    return str(timestamp)


def check_choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def hmac_digest(key: bytes, content: bytes, digest: str) -> bytes:
    return hmac.new(key, content, digest).digest()


def is_token(name: str) -> bool:
    """An HTTP token (RFC 9110): what a header name, or a Standard Webhooks id, is made of."""
    return bool(name) and all(c in _TCHAR for c in name)


def is_header_text(text: str) -> bool:
    """Visible ASCII and spaces only: nothing that could end or fold a header line."""
    return all(" " <= c <= "~" for c in text)
