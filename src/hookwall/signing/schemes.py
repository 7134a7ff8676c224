"""Signature schemes: the headers a request gets, computed over exactly the bytes sent.

Pure functions of (body, message id, timestamp, keys): no I/O, no clock (the caller passes
``timestamp`` and ``now``), no mitmproxy. Formats and test vectors:
shared/reference/signing-formats.md; receiver side: docs/verifying.md.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hookwall.core import ids
from hookwall.signing.keys import SigningKey, parse_secret

__all__ = [
    "GenericHmac",
    "GitHub",
    "Scheme",
    "SignResult",
    "SigningError",
    "StandardWebhooks",
    "Stripe",
    "is_valid_message_id",
    "make_scheme",
    "new_message_id",
    "parse_secret_for",
    "sign_request",
]

_BASE62 = string.ascii_letters + string.digits
_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
# Headers a generic scheme must never write: they frame the message or route it.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    }
)


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


# ---------------------------------------------------------------------------------------
# helpers


def _check_keys(scheme: str, keys: Sequence[SigningKey], allowed: tuple[str, ...]) -> None:
    if not keys:
        raise SigningError(f"{scheme}: no signing key to sign with")
    for key in keys:
        if key.algorithm not in allowed:
            raise SigningError(
                f"{scheme}: key {key.key_id} is an {key.algorithm} key, "
                f"this scheme signs with {' or '.join(allowed)} keys"
            )


def _check_timestamp(scheme: str, timestamp: int) -> str:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise SigningError(f"{scheme}: timestamp must be a non-negative integer (Unix seconds)")
    return str(timestamp)


def _hmac(key: bytes, content: bytes, digest: str) -> bytes:
    return hmac.new(key, content, digest).digest()


def _is_token(name: str) -> bool:
    return bool(name) and all(c in _TCHAR for c in name)


def _is_header_text(text: str) -> bool:
    """Visible ASCII and spaces only: nothing that could end or fold a header line."""
    return all(" " <= c <= "~" for c in text)


def _check_choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


# ---------------------------------------------------------------------------------------
# schemes


@dataclass(frozen=True)
class StandardWebhooks:
    """Standard Webhooks v1.0.0 (``v1`` HMAC-SHA256, ``v1a`` Ed25519); also Svix.

    ``header_prefix="svix"`` writes ``svix-id``/``svix-timestamp``/``svix-signature``
    (same content and signatures) for receivers built on Svix's libraries.
    """

    header_prefix: Literal["webhook", "svix"] = "webhook"

    name: ClassVar[str] = "standard-webhooks"

    def __post_init__(self) -> None:
        _check_choice("header_prefix", self.header_prefix, ("webhook", "svix"))

    @property
    def owned_headers(self) -> tuple[str, ...]:
        p = self.header_prefix
        return (f"{p}-id", f"{p}-timestamp", f"{p}-signature")

    def sign(
        self, body: bytes, *, msg_id: str, timestamp: int, keys: Sequence[SigningKey]
    ) -> list[tuple[str, str]]:
        _check_keys(self.name, keys, ("hmac-sha256", "ed25519"))
        if not is_valid_message_id(msg_id):
            raise SigningError(
                f"{self.name}: the message id must be non-empty visible ASCII "
                "(letters, digits, '_', '-', ...) without '.'"
            )
        ts = _check_timestamp(self.name, timestamp)
        content = f"{msg_id}.{ts}.".encode("ascii") + body
        signatures: list[str] = []
        for key in keys:
            if key.algorithm == "ed25519":
                raw = Ed25519PrivateKey.from_private_bytes(key.material).sign(content)
                version = "v1a"
            else:
                raw = _hmac(key.material, content, "sha256")
                version = "v1"
            signatures.append(f"{version},{base64.b64encode(raw).decode('ascii')}")
        id_header, ts_header, sig_header = self.owned_headers
        return [(id_header, msg_id), (ts_header, ts), (sig_header, " ".join(signatures))]


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
        _check_keys(self.name, keys, ("hmac-sha256",))
        headers = [
            ("X-Hub-Signature-256", "sha256=" + _hmac(key.material, body, "sha256").hex())
            for key in keys
        ]
        if self.legacy_sha1:
            headers += [
                ("X-Hub-Signature", "sha1=" + _hmac(key.material, body, "sha1").hex())
                for key in keys
            ]
        return headers


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
        _check_keys(self.name, keys, ("hmac-sha256",))
        ts = _check_timestamp(self.name, timestamp)
        content = f"{ts}.".encode("ascii") + body
        parts = [f"t={ts}"] + [f"v1={_hmac(k.material, content, 'sha256').hex()}" for k in keys]
        return [("Stripe-Signature", ",".join(parts))]


@dataclass(frozen=True)
class GenericHmac:
    """A configurable header carrying an HMAC of the body (or of timestamp + separator + body).

    ``value`` is a template with ``{signature}`` (required) and ``{timestamp}``; with several
    keys it is rendered once per key and the values are joined with ``", "`` in one header.
    """

    header: str
    algorithm: Literal["sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    value: str = "{signature}"
    content: Literal["body", "timestamp-body"] = "body"
    separator: str = "."
    timestamp_header: str | None = None

    name: ClassVar[str] = "hmac"

    def __post_init__(self) -> None:
        for what, header in (("header", self.header), ("timestamp_header", self.timestamp_header)):
            if header is None and what == "timestamp_header":
                continue
            if not isinstance(header, str) or not _is_token(header):
                raise ValueError(f"{what} must be a valid HTTP header name; got {header!r}")
            if header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{what} {header!r} is reserved: hookwall cannot sign into it")
        if self.timestamp_header is not None and (
            self.timestamp_header.lower() == self.header.lower()
        ):
            raise ValueError("timestamp_header must differ from header")
        _check_choice("algorithm", self.algorithm, ("sha256", "sha512"))
        _check_choice("encoding", self.encoding, ("hex", "base64"))
        _check_choice("content", self.content, ("body", "timestamp-body"))
        if not isinstance(self.separator, str):
            raise ValueError("separator must be a string")
        fields = _template_fields(self.value)
        if "signature" not in fields:
            raise ValueError(f"value template {self.value!r} has no {{signature}} placeholder")
        if "timestamp" in fields and self.content != "timestamp-body":
            raise ValueError(
                f"value template {self.value!r} shows {{timestamp}} but content is 'body', so "
                "the timestamp would not be signed; set content to 'timestamp-body'"
            )

    @property
    def owned_headers(self) -> tuple[str, ...]:
        if self.timestamp_header is None:
            return (self.header.lower(),)
        return (self.header.lower(), self.timestamp_header.lower())

    def signed_content(self, body: bytes, timestamp: int) -> bytes:
        if self.content == "body":
            return body
        return f"{timestamp}{self.separator}".encode() + body

    def sign(
        self, body: bytes, *, msg_id: str, timestamp: int, keys: Sequence[SigningKey]
    ) -> list[tuple[str, str]]:
        _check_keys(self.name, keys, (f"hmac-{self.algorithm}",))
        ts = _check_timestamp(self.name, timestamp)
        content = self.signed_content(body, timestamp)
        values = []
        for key in keys:
            raw = _hmac(key.material, content, self.algorithm)
            sig = raw.hex() if self.encoding == "hex" else base64.b64encode(raw).decode("ascii")
            values.append(self.value.format(signature=sig, timestamp=ts))
        headers = [(self.header, ", ".join(values))]
        if self.timestamp_header is not None:
            headers.append((self.timestamp_header, ts))
        return headers


def _template_fields(template: object) -> set[str]:
    if not isinstance(template, str):
        raise ValueError("value must be a string template such as 'sha256={signature}'")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"value template {template!r} is malformed: {exc}") from None
    fields: set[str] = set()
    for literal, field_name, spec, conversion in parsed:
        if not _is_header_text(literal):
            raise ValueError(f"value template {template!r} may hold only visible ASCII and spaces")
        if field_name is None:
            continue
        if field_name not in ("signature", "timestamp") or spec or conversion:
            raise ValueError(
                f"value template {template!r}: unknown placeholder {{{field_name}}}; "
                "use {signature} and {timestamp} (write {{ and }} for literal braces)"
            )
        fields.add(field_name)
    return fields


# ---------------------------------------------------------------------------------------
# factory and the proxy's entry point

_SchemeClass = type[StandardWebhooks] | type[GitHub] | type[Stripe] | type[GenericHmac]
_SCHEME_CLASSES: dict[str, _SchemeClass] = {
    "standard-webhooks": StandardWebhooks,
    "github": GitHub,
    "stripe": Stripe,
    "hmac": GenericHmac,
}


def make_scheme(name: str, **options: object) -> Scheme:
    """Build a scheme from a policy's options (``-`` in option names is read as ``_``)."""
    cls = _SCHEME_CLASSES.get(name)
    if cls is None:
        known = ", ".join(_SCHEME_CLASSES)
        raise ValueError(f"unknown signing scheme {name!r} (known: {known})")
    allowed = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, object] = {}
    for raw_key, value in options.items():
        key = raw_key.replace("-", "_")
        if key not in allowed:
            hint = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"{name}: unknown option {raw_key!r} (allowed: {hint})")
        kwargs[key] = value
    for key, value in kwargs.items():
        if key == "legacy_sha1":
            if not isinstance(value, bool):
                raise ValueError(f"{name}: option legacy_sha1 must be true or false")
        elif key == "timestamp_header":
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: option timestamp_header must be a header name")
        elif not isinstance(value, str):
            raise ValueError(f"{name}: option {key} must be a string; got {value!r}")
    required = [
        f.name
        for f in allowed.values()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [f for f in required if f not in kwargs]
    if missing:
        raise ValueError(f"{name}: missing required option(s): {', '.join(missing)}")
    factory: Callable[..., Scheme] = cls
    try:
        return factory(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def parse_secret_for(
    scheme: Scheme, secret: str, *, not_after: datetime | None = None
) -> SigningKey:
    """:func:`parse_secret` with the HMAC hash the scheme signs with (GenericHmac's algorithm)."""
    algorithm = scheme.algorithm if isinstance(scheme, GenericHmac) else "sha256"
    return parse_secret(scheme.name, secret, not_after=not_after, hmac_algorithm=algorithm)


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
        and _is_token(msg_id)
        and "." not in msg_id
    )


def new_message_id() -> str:
    """``msg_`` + 24 base62 characters, time-ordered (``hookwall.core.ids``)."""
    return ids.message_id()
