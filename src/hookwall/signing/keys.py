"""Signing keys: parsing the secrets operators configure, fingerprints, generating new ones.

A secret is only ever held as a :class:`SigningKey`, whose ``repr``/``str`` show the key id and
never the material, and no error raised here quotes any part of a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NoReturn, get_args

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "SCHEMES",
    "BadSecret",
    "GeneratedKey",
    "KeyAlgorithm",
    "SigningKey",
    "ed25519_public_key",
    "generate_key",
    "key_fingerprint",
    "parse_secret",
]

KeyAlgorithm = Literal["hmac-sha256", "hmac-sha512", "ed25519"]
_ALGORITHMS: frozenset[str] = frozenset(get_args(KeyAlgorithm))

#: The scheme names parse_secret and generate_key understand.
SCHEMES: tuple[str, ...] = ("standard-webhooks", "github", "stripe", "hmac")

SW_HMAC_PREFIX = "whsec_"
SW_ED25519_PREFIX = "whsk_"
SW_PUBLIC_PREFIX = "whpk_"
# The spec advises 24-64 random bytes; accept a little either side, refuse what is clearly wrong.
SW_HMAC_MIN_BYTES = 16
SW_HMAC_MAX_BYTES = 128
ED25519_SEED_BYTES = 32

# Key ids of HMAC keys: scrypt, so that an id (which is logged) does not let anyone test
# guesses of a short, human-chosen secret quickly. Changing these changes every key id.
_KEY_ID_SALT = b"hookwall key id v1"
_KEY_ID_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 16}
_KEY_ID_HEX = 12

_BASE62 = string.ascii_letters + string.digits


class BadSecret(ValueError):
    """A secret that does not fit its scheme. The message never contains the secret."""


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class SigningKey:
    """One key able to sign: what a scheme needs, and a non-secret id to log."""

    algorithm: KeyAlgorithm
    material: bytes
    key_id: str
    not_after: datetime | None = None
    public_key: str | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"unknown key algorithm {self.algorithm!r}")
        if not isinstance(self.material, bytes) or not self.material:
            raise ValueError("key material must be non-empty bytes")
        if self.not_after is not None and self.not_after.utcoffset() is None:
            raise ValueError("not_after must be timezone-aware")
        if self.algorithm == "ed25519":
            if len(self.material) != ED25519_SEED_BYTES:
                raise ValueError("an ed25519 key's material is its 32-byte private seed")
            derived = SW_PUBLIC_PREFIX + _b64(ed25519_public_key(self.material))
            if self.public_key is None:
                object.__setattr__(self, "public_key", derived)
            elif self.public_key != derived:
                raise ValueError("public_key does not belong to this ed25519 key")
        elif self.public_key is not None:
            raise ValueError("only ed25519 keys have a public key")

    def active(self, now: datetime) -> bool:
        """True while the key may sign: strictly before ``not_after`` (if any)."""
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        return self.not_after is None or now < self.not_after

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm}, id={self.key_id})"

    __str__ = __repr__

    def __copy__(self) -> SigningKey:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> SigningKey:
        return self

    def __reduce__(self) -> NoReturn:
        # Pickling would write the material wherever the pickle goes (a cache, a log, a
        # crash dump); nothing needs to pickle a key, so refuse. copy/deepcopy still work.
        raise TypeError("SigningKey cannot be pickled")


@dataclass(frozen=True)
class GeneratedKey:
    """A new secret to hand to the receiver (or, for Ed25519, to keep; share ``public_key``)."""

    secret: str = field(repr=False)
    key_id: str
    public_key: str | None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64; missing '=' padding is tolerated (some tools drop it)."""
    if len(text) % 4 == 1:
        raise BadSecret(f"{what}: the part after the prefix is not valid base64 (bad length)")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret(
            f"{what}: the part after the prefix is not valid standard base64 "
            "(letters, digits, '+', '/', optional '=' padding)"
        ) from None


def ed25519_public_key(seed: bytes) -> bytes:
    """The raw 32-byte public key of a 32-byte Ed25519 private seed."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_fingerprint(algorithm: str, material: bytes) -> str:
    """A stable, non-secret id for a key.

    Ed25519: ``"ed25519:"`` + the first 12 hex digits of sha256(raw public key), so a receiver
    can compute the same id from the ``whpk_`` key. HMAC (either hash): ``"hmac:"`` + the first
    12 hex digits of a deliberately slow scrypt of the material, so a guessable secret cannot
    be brute-forced from its id. Nothing is cached.
    """
    if algorithm == "ed25519":
        digest = hashlib.sha256(ed25519_public_key(material)).hexdigest()
        return "ed25519:" + digest[:_KEY_ID_HEX]
    if algorithm in ("hmac-sha256", "hmac-sha512"):
        derived = hashlib.scrypt(
            material,
            salt=_KEY_ID_SALT,
            n=_KEY_ID_SCRYPT["n"],
            r=_KEY_ID_SCRYPT["r"],
            p=_KEY_ID_SCRYPT["p"],
            dklen=_KEY_ID_SCRYPT["dklen"],
        )
        return "hmac:" + derived.hex()[:_KEY_ID_HEX]
    raise ValueError(f"unknown key algorithm {algorithm!r}")


def _check_text(scheme: str, secret: object) -> str:
    if not isinstance(secret, str):
        raise BadSecret(f"{scheme} secret must be a string")
    if not secret or not secret.strip():
        raise BadSecret(f"{scheme} secret is empty")
    if secret != secret.strip():
        raise BadSecret(
            f"{scheme} secret has leading or trailing whitespace (a copy-paste slip?); "
            "remove it, receivers would not sign with it"
        )
    return secret


def _utf8(scheme: str, secret: str) -> bytes:
    try:
        return secret.encode("utf-8")
    except UnicodeEncodeError:
        raise BadSecret(f"{scheme} secret is not valid Unicode text") from None


def _parse_standard_webhooks(secret: str, not_after: datetime | None) -> SigningKey:
    what = "standard-webhooks secret"
    if secret.startswith(SW_HMAC_PREFIX):
        material = _b64decode(secret[len(SW_HMAC_PREFIX) :], what)
        if not SW_HMAC_MIN_BYTES <= len(material) <= SW_HMAC_MAX_BYTES:
            raise BadSecret(
                f"{what}: a whsec_ key must decode to {SW_HMAC_MIN_BYTES}..{SW_HMAC_MAX_BYTES} "
                f"bytes (the spec advises 24-64), this one decodes to {len(material)}"
            )
        return SigningKey(
            "hmac-sha256", material, key_fingerprint("hmac-sha256", material), not_after
        )
    if secret.startswith(SW_ED25519_PREFIX):
        raw = _b64decode(secret[len(SW_ED25519_PREFIX) :], what)
        if len(raw) not in (ED25519_SEED_BYTES, 2 * ED25519_SEED_BYTES):
            raise BadSecret(
                f"{what}: a whsk_ key must decode to a 32-byte Ed25519 seed or 64 bytes "
                f"(seed followed by public key), this one decodes to {len(raw)}"
            )
        seed = raw[:ED25519_SEED_BYTES]
        public = ed25519_public_key(seed)
        if len(raw) == 2 * ED25519_SEED_BYTES and raw[ED25519_SEED_BYTES:] != public:
            raise BadSecret(
                f"{what}: the 64-byte whsk_ key's second half is not the public key of its "
                "first half (seed); the key is corrupt or two keys were mixed up"
            )
        return SigningKey(
            "ed25519",
            seed,
            key_fingerprint("ed25519", seed),
            not_after,
            SW_PUBLIC_PREFIX + _b64(public),
        )
    if secret.startswith(SW_PUBLIC_PREFIX):
        raise BadSecret(
            f"{what}: whpk_ is a public key, which can only verify; "
            "hookwall needs the private key (whsk_) to sign"
        )
    raise BadSecret("standard-webhooks secrets start with whsec_ (HMAC) or whsk_ (Ed25519)")


def parse_secret(
    scheme: str,
    secret: str,
    *,
    not_after: datetime | None = None,
    hmac_algorithm: str = "sha256",
) -> SigningKey:
    """Turn a configured secret into a :class:`SigningKey` for ``scheme``.

    Raises :class:`BadSecret` for a secret that does not fit, plain :class:`ValueError` for
    an unknown scheme, a bad ``hmac_algorithm`` or a naive ``not_after``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown signing scheme {scheme!r} (known: {', '.join(SCHEMES)})")
    if hmac_algorithm not in ("sha256", "sha512"):
        raise ValueError(f"hmac_algorithm must be 'sha256' or 'sha512', not {hmac_algorithm!r}")
    if scheme != "hmac" and hmac_algorithm != "sha256":
        raise ValueError(f"hmac_algorithm applies only to the hmac scheme ({scheme} uses sha256)")
    if not_after is not None and not_after.utcoffset() is None:
        raise ValueError("not_after must be timezone-aware")
    text = _check_text(scheme, secret)
    if scheme == "standard-webhooks":
        return _parse_standard_webhooks(text, not_after)
    # github, stripe (whsec_ prefix and all, NOT base64-decoded) and hmac: the text's bytes.
    material = _utf8(scheme, text)
    algorithm: KeyAlgorithm = "hmac-sha512" if hmac_algorithm == "sha512" else "hmac-sha256"
    return SigningKey(algorithm, material, key_fingerprint(algorithm, material), not_after)


def generate_key(scheme: str, *, ed25519: bool = False) -> GeneratedKey:
    """A fresh random secret for ``scheme``, in the form its receivers expect."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown signing scheme {scheme!r} (known: {', '.join(SCHEMES)})")
    if ed25519 and scheme != "standard-webhooks":
        raise ValueError("ed25519 keys exist only for the standard-webhooks scheme")
    if scheme == "standard-webhooks":
        if ed25519:
            secret = SW_ED25519_PREFIX + _b64(secrets.token_bytes(ED25519_SEED_BYTES))
        else:
            secret = SW_HMAC_PREFIX + _b64(secrets.token_bytes(32))
    elif scheme == "stripe":
        secret = SW_HMAC_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(32))
    else:
        secret = secrets.token_hex(32)
    key = parse_secret(scheme, secret)
    return GeneratedKey(secret=secret, key_id=key.key_id, public_key=key.public_key)
