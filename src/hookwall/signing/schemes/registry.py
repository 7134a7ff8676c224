"""The schemes by their policy names: a scheme built from a policy's options, and its keys.

``make_scheme`` turns ``signing: {scheme: NAME, ...options}`` into a scheme object, with an
error that names the scheme and the option; ``parse_secret_for`` parses a secret for the
hash that scheme signs with. ``scheme_options`` is the same fields as shapes, for the
policy's JSON Schema: what ``make_scheme`` accepts, read from the scheme classes themselves.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import datetime

from hookwall.config.shapes import Flag, Nullable, OneOf, Shape, Text
from hookwall.signing.keys import SigningKey, parse_secret
from hookwall.signing.schemes.base import Scheme
from hookwall.signing.schemes.generic import GenericHmac
from hookwall.signing.schemes.github import GitHub
from hookwall.signing.schemes.standard import StandardWebhooks
from hookwall.signing.schemes.stripe import Stripe

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


def scheme_options(name: str) -> tuple[dict[str, Shape], tuple[str, ...]]:
    """The options of scheme ``name`` as shapes, and which must be written: from the fields
    of its class, as ``make_scheme`` reads them (a Literal is a choice, a field without a
    default is required)."""
    cls = _SCHEME_CLASSES[name]
    hints = typing.get_type_hints(cls)
    options: dict[str, Shape] = {}
    required: list[str] = []
    for field in dataclasses.fields(cls):
        options[field.name] = _option_shape(hints[field.name])
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.append(field.name)
    return options, tuple(required)


def _option_shape(hint: object) -> Shape:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return OneOf(tuple(str(arg) for arg in args))
    if hint is bool:
        return Flag()
    if hint is str:
        return Text()
    if isinstance(hint, types.UnionType) and set(args) == {str, type(None)}:
        return Nullable(Text())
    raise TypeError(f"a scheme option of type {hint!r} has no shape; add one here")
