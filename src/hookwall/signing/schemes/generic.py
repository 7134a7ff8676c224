"""A generic HMAC scheme: the header, hash, encoding and signed content set in the policy.

For receivers with a home-grown format (``X-Signature: sha256=<hex>``, a timestamp header
next to it, ...). Its options are checked when the policy loads, so a header that frames or
routes the message, or a value template that would leave the timestamp unsigned, is refused
there rather than at the first request.
"""

from __future__ import annotations

import base64
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from hookwall.signing.keys import SigningKey
from hookwall.signing.schemes.base import (
    check_choice,
    check_keys,
    check_timestamp,
    hmac_digest,
    is_header_text,
    is_token,
)

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
            if not isinstance(header, str) or not is_token(header):
                raise ValueError(f"{what} must be a valid HTTP header name; got {header!r}")
            if header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{what} {header!r} is reserved: hookwall cannot sign into it")
        if self.timestamp_header is not None and (
            self.timestamp_header.lower() == self.header.lower()
        ):
            raise ValueError("timestamp_header must differ from header")
        check_choice("algorithm", self.algorithm, ("sha256", "sha512"))
        check_choice("encoding", self.encoding, ("hex", "base64"))
        check_choice("content", self.content, ("body", "timestamp-body"))
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
        check_keys(self.name, keys, (f"hmac-{self.algorithm}",))
        ts = check_timestamp(self.name, timestamp)
        content = self.signed_content(body, timestamp)
        values = []
        for key in keys:
            raw = hmac_digest(key.material, content, self.algorithm)
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
        if not is_header_text(literal):
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
