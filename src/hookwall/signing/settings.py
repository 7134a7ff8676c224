"""The ``signing`` section of a destination: scheme options and secret references.

Secrets are never written in a policy: each is a reference, ``env:NAME`` or ``file:PATH``,
resolved at load time (``config.secrets``) so a missing variable or unreadable file is a load
error with file and line, not a failed delivery at 3 a.m. No message built here ever contains
a secret value: errors name the reference, never what it resolved to (and never echo a
literal).
"""

from __future__ import annotations

from dataclasses import dataclass

from hookwall.config.checker import Checker
from hookwall.config.errors import Location
from hookwall.config.secrets import SecretRef, check_references, read_secret, references
from hookwall.config.shapes import Fields, Flag, JsonSchema, OneOf, Shape, Text
from hookwall.config.yamlnodes import YMap, YNode, YScalar
from hookwall.signing.keys import BadSecret, SigningKey, generate_key
from hookwall.signing.schemes import Scheme, make_scheme, parse_secret_for
from hookwall.signing.schemes.registry import scheme_options

__all__ = ["HEADER_PREFIXES", "SCHEMES", "SIGNING", "SigningSettings", "check_signing"]

SCHEMES = ("standard-webhooks", "github", "stripe", "hmac")
HEADER_PREFIXES = ("webhook", "svix")  # standard-webhooks' header names: webhook-id or svix-id
_COMMON = {
    "scheme": OneOf(SCHEMES, doc="how requests are signed, as the receiver verifies them"),
    "secrets": references(
        "env:ACME_WHSEC", "the signing secrets; every key signs (receivers accept any)"
    ),
    "id_header": Text("a header name", doc="the sender header that carries the message id"),
    "keep_sender_signatures": Flag(doc="forward signature headers the sender set itself"),
}
_OPTIONS = {name: scheme_options(name) for name in SCHEMES}  # from the scheme classes
_SCHEME_KEYS: dict[str, tuple[str, ...]] = {name: tuple(_OPTIONS[name][0]) for name in SCHEMES}


def _signing_shape() -> Fields:
    """Every key any scheme takes; an ``if scheme: X`` per scheme allows only X's options
    and asks for the ones X requires."""
    every: dict[str, Shape] = dict(_COMMON)
    per_scheme: list[JsonSchema] = []
    for name in SCHEMES:
        options, required = _OPTIONS[name]
        every.update(options)
        others = {key: False for other in SCHEMES if other != name for key in _SCHEME_KEYS[other]}
        then: JsonSchema = {"properties": {k: v for k, v in others.items() if k not in options}}
        if required:
            then["required"] = list(required)
        per_scheme.append(
            {
                "if": {"properties": {"scheme": {"const": name}}, "required": ["scheme"]},
                "then": then,
            }
        )
    return Fields(
        every,
        required=("scheme", "secrets"),
        extra={"allOf": per_scheme},
        doc="sign each request for the receiver; senders hold no secrets",
    )


SIGNING = _signing_shape()


@dataclass(frozen=True, slots=True, repr=False)
class SigningSettings:
    """How a destination's requests are signed. Keys are loaded; ``references`` are what the
    policy wrote (``env:NAME``), safe to show; the key material never is."""

    scheme: Scheme
    keys: tuple[SigningKey, ...]
    references: tuple[str, ...]
    location: Location
    id_header: str | None = None
    keep_sender_signatures: bool = False

    def __repr__(self) -> str:
        ids = ", ".join(key.key_id for key in self.keys)
        return f"SigningSettings({self.scheme.name}, keys=[{ids}])"


def check_signing(checker: Checker, node: YNode, path: str) -> SigningSettings | None:
    """Validate one ``signing`` mapping and load its keys; None after recording issues."""
    mapping = checker.mapping(node, path)
    if mapping is None:
        return None
    entries = mapping.entries
    if "scheme" not in entries:
        checker.issue(mapping.location, f"{path}: missing 'scheme'; one of {', '.join(SCHEMES)}")
        return None
    scheme_name = checker.choice(entries["scheme"].value, f"{path}.scheme", SCHEMES)
    if scheme_name is None:
        return None
    checker.keys(mapping, path, (*_COMMON, *_SCHEME_KEYS[scheme_name]))
    try:
        scheme = make_scheme(scheme_name, **_options(checker, mapping, path, scheme_name))
    except ValueError as exc:
        checker.issue(mapping.location, f"{path}: {exc}")
        return None

    id_header = None
    if "id_header" in entries:
        id_header = checker.string(entries["id_header"].value, f"{path}.id_header", "a header name")
    keep = False
    if "keep_sender_signatures" in entries:
        keep = bool(
            checker.boolean(
                entries["keep_sender_signatures"].value, f"{path}.keep_sender_signatures"
            )
        )

    secrets = entries.get("secrets")
    listed = secrets.value if secrets else None
    refs = check_references(checker, listed, mapping, path, "secrets", "env:ACME_WHSEC")
    keys: list[SigningKey] = []
    for ref in refs:
        loaded = _load_key(checker, scheme, ref)
        if loaded is not None:
            keys.append(loaded)
    if not refs or len(keys) != len(refs):
        return None
    return SigningSettings(
        scheme=scheme,
        keys=tuple(keys),
        references=tuple(ref.text for ref in refs),
        location=mapping.location,
        id_header=id_header.lower() if id_header else None,
        keep_sender_signatures=keep,
    )


def _options(checker: Checker, mapping: YMap, path: str, scheme_name: str) -> dict[str, object]:
    """The scheme's own keys as written (each a single value)."""
    options: dict[str, object] = {}
    for option in _SCHEME_KEYS[scheme_name]:
        if option in mapping.entries:
            value = mapping.entries[option].value
            if not isinstance(value, YScalar):
                checker.expected(value, f"{path}.{option}", "a single value")
                continue
            if option == "header_prefix":  # svix-id/-timestamp/-signature for Svix receivers
                prefix = checker.choice(value, f"{path}.{option}", HEADER_PREFIXES)
                if prefix is None:
                    continue
            options[option] = value.value
    return options


def _load_key(checker: Checker, scheme: Scheme, ref: SecretRef) -> SigningKey | None:
    # Not reading secrets: a fresh key of the scheme's form stands in (its value is unknown).
    secret = read_secret(checker, ref) if checker.read_secrets else generate_key(scheme.name).secret
    if secret is None:
        return None
    try:
        return parse_secret_for(scheme, secret, not_after=ref.not_after)
    except BadSecret as exc:
        checker.issue(ref.location, f"secret {ref.text}: {exc}")
        return None
