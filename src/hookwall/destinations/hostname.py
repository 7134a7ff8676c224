"""Canonicalise the host a webhook sender asked for, before any DNS lookup or address check.

SSRF filters are usually bypassed by spellings, not by addresses: '0x7f.1', '017700000001',
full-width digits, '[::ffff:127.0.0.1]'. We read a host the way browsers (WHATWG URL) and
libc's inet_aton read it, then hand one canonical text downstream, so what we check is what
we connect to. Anything ambiguous is refused (fail closed).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

import idna

# Longer than any valid host in any spelling; bounds the work done on hostile input.
_MAX_RAW_LENGTH = 1024
_MAX_LABEL = 63
_MAX_NAME = 253

# Refused anywhere in a host: URL delimiters a downstream parser could split on.
_URL_DELIMITERS = frozenset("@\\/?#")
# Additionally refused in a (mapped) domain name; '%' is allowed only for an IPv6 zone id.
_NAME_DELIMITERS = frozenset("%:[]")

_ASCII_LABEL = re.compile(r"[a-z0-9_-]+", re.ASCII)
_DECIMAL = re.compile(r"[0-9]+", re.ASCII)
_OCTAL = re.compile(r"[0-7]+", re.ASCII)
_HEX = re.compile(r"[0-9a-f]+", re.ASCII)
# RFC 6874 ZoneID: one or more unreserved characters.
_ZONE_ID = re.compile(r"[A-Za-z0-9._~-]+", re.ASCII)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class InvalidHost(ValueError):
    """str(exc) is a human sentence saying what is wrong."""


@dataclass(frozen=True, slots=True)
class Host:
    """A host in the one spelling the rest of hookwall uses."""

    # Canonical: lower-case A-label name without trailing dot, or the IP in ipaddress's
    # compressed form (IPv6 without brackets or zone).
    text: str
    # Set when the host is an IP literal in any accepted spelling.
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    # True for names that are loopback by definition (no DNS asked).
    loopback_name: bool


def host_port(host: str, port: int) -> str:
    """``host:port`` as written in a URL or a CONNECT target: an IPv6 literal in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def canonicalize_host(raw: str) -> Host:
    """Canonicalise ``raw`` or raise InvalidHost; never raises anything else for a str."""
    if not isinstance(raw, str):
        raise InvalidHost(f"The host must be text, not {type(raw).__name__}.")
    return _canonicalize(raw)


# Every request names its host, and webhooks go to the same few hosts over and over: the
# answer (a frozen Host; refusals are not cached) is kept for the most recent names.
@functools.lru_cache(maxsize=4096)
def _canonicalize(raw: str) -> Host:
    if not raw:
        raise InvalidHost("The host is empty.")
    shown = _show(raw)
    if len(raw) > _MAX_RAW_LENGTH:
        raise InvalidHost(f"The host {shown} is longer than any valid host name.")
    _refuse_characters(raw, shown, _URL_DELIMITERS)
    if raw.startswith("[") or ":" in raw:
        return _ipv6_host(raw, shown)
    if "[" in raw or "]" in raw:
        raise InvalidHost(
            f"The host {shown} has unbalanced brackets; brackets may only enclose a whole "
            "IPv6 address, as in [2001:db8::1]."
        )
    if "%" in raw:
        raise InvalidHost(
            f"The host {shown} contains '%'; percent-encoded hosts are refused, and '%' is "
            "only allowed before an IPv6 zone id."
        )
    return _name_host(raw, shown)


def _show(raw: str) -> str:
    """A log-safe, bounded quotation of hostile input."""
    return ascii(raw) if len(raw) <= 80 else ascii(raw[:80]) + "..."


def _refuse_characters(text: str, shown: str, delimiters: frozenset[str]) -> None:
    """Refuse control characters, whitespace and delimiters a URL parser could split on."""
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            what = "a NUL character" if code == 0 else f"the control character U+{code:04X}"
        elif char.isspace():
            what = f"whitespace (U+{code:04X})"
        elif char in delimiters:
            what = f"the character {char!r}"
        else:
            continue
        raise InvalidHost(f"The host {shown} contains {what}, which is never valid in a host.")


def _ipv6_host(raw: str, shown: str) -> Host:
    """Parse '[v6]', '[v6%25zone]', 'v6' or 'v6%zone'; the zone id is dropped."""
    if raw.startswith("["):
        if not raw.endswith("]") or len(raw) < 2:
            raise InvalidHost(f"The host {shown} has an opening '[' without a closing ']'.")
        literal = raw[1:-1]
    else:
        literal = raw
    if "[" in literal or "]" in literal:
        raise InvalidHost(
            f"The host {shown} has unbalanced brackets; brackets may only enclose a whole "
            "IPv6 address, as in [2001:db8::1]."
        )
    address_text, percent, zone = literal.partition("%")
    if percent and raw.startswith("[") and zone.startswith("25"):
        zone = zone[2:]  # RFC 6874 writes the '%' of a bracketed zone id as '%25'
    if percent and not _ZONE_ID.fullmatch(zone):
        raise InvalidHost(
            f"The host {shown} has an invalid IPv6 zone id; write it as fe80::1%eth0 "
            "or [fe80::1%25eth0]."
        )
    if ":" not in address_text:
        raise InvalidHost(
            f"The host {shown} puts brackets around something that is not an IPv6 address; "
            "only IPv6 addresses are written in brackets."
        )
    try:
        if not address_text.isascii():
            raise ValueError("non-ASCII")
        address = ipaddress.IPv6Address(address_text)
    except ValueError:
        hint = ""
        if not raw.startswith("[") and address_text.count(":") == 1:
            hint = " (a port does not belong in the host)"
        raise InvalidHost(f"The host {shown} is not a valid IPv6 address{hint}.") from None
    return Host(address.compressed, address, False)


def _name_host(raw: str, shown: str) -> Host:
    """UTS-46 map first, then read a numeric host as IPv4 or encode the name to A-labels."""
    try:
        mapped = idna.uts46_remap(raw, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError, LookupError):
        raise InvalidHost(
            f"The host {shown} contains a character that is not allowed in a domain name."
        ) from None
    # Mapping can produce delimiters from look-alikes (U+FF0F -> '/', U+FF20 -> '@').
    _refuse_characters(mapped, shown, _URL_DELIMITERS | _NAME_DELIMITERS)
    name = mapped.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidHost(f"The host {shown} has no name, only a dot.")
    if len(name) > _MAX_NAME:  # A-labels are never shorter than the Unicode they encode
        raise InvalidHost(f"The host {shown} is longer than {_MAX_NAME} octets.")
    labels = name.split(".")
    if labels[0] == "":
        raise InvalidHost(f"The host {shown} starts with a dot.")
    if "" in labels:
        raise InvalidHost(f"The host {shown} has an empty label (two dots in a row).")
    if _is_numeric(labels[-1]):
        ipv4 = _parse_ipv4(labels, shown)
        return Host(ipv4.compressed, ipv4, False)
    text = ".".join(_to_alabel(label, shown) for label in labels)
    if len(text) > _MAX_NAME:
        raise InvalidHost(f"The host {shown} is longer than {_MAX_NAME} octets.")
    return Host(text, None, _is_loopback_name(text))


def _to_alabel(label: str, shown: str) -> str:
    """One label in A-label form: ASCII labels are checked, others IDNA-encoded."""
    if label.isascii():
        if not _ASCII_LABEL.fullmatch(label):
            raise InvalidHost(
                f"The host {shown} has a label {label!r} with characters other than letters, "
                "digits, '-' and '_'."
            )
        if label.startswith("xn--"):
            try:
                idna.ulabel(label)
            except (idna.IDNAError, UnicodeError, ValueError, LookupError):
                raise InvalidHost(
                    f"The host {shown} has a label {label!r} that is not a valid "
                    "internationalised (xn--) label."
                ) from None
        alabel = label
    else:
        try:
            alabel = idna.encode(label, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError, LookupError):
            raise InvalidHost(
                f"The host {shown} has a label that is not a valid internationalised "
                "domain name label."
            ) from None
    if len(alabel) > _MAX_LABEL:
        raise InvalidHost(f"The host {shown} has a label longer than {_MAX_LABEL} octets.")
    return alabel


def _is_numeric(label: str) -> bool:
    """WHATWG 'ends in a number': decimal digits, or 0x followed by hex digits (or nothing)."""
    if label.startswith("0x"):
        return label == "0x" or _HEX.fullmatch(label, 2) is not None
    return _DECIMAL.fullmatch(label) is not None


def _ipv4_part(part: str) -> int | None:
    """One dotted part: decimal, hex (0x, bare '0x' is 0) or octal (leading 0); None if bad."""
    if len(part) > _MAX_LABEL:
        return None
    if part.startswith("0x"):
        digits = part[2:]
        if not digits:
            return 0
        return int(digits, 16) if _HEX.fullmatch(digits) else None
    if len(part) > 1 and part.startswith("0"):
        digits = part[1:]
        return int(digits, 8) if _OCTAL.fullmatch(digits) else None
    return int(part) if _DECIMAL.fullmatch(part) else None


def _parse_ipv4(labels: list[str], shown: str) -> ipaddress.IPv4Address:
    """Read 1-4 parts as inet_aton/WHATWG do; the last part fills the remaining bytes."""
    prefix = f"The host {shown} ends in a number, so it must be an IPv4 address, but"
    if len(labels) > 4:
        raise InvalidHost(f"{prefix} it has {len(labels)} dot-separated parts (at most 4).")
    numbers: list[int] = []
    for part in labels:
        number = _ipv4_part(part)
        if number is None:
            raise InvalidHost(
                f"{prefix} {part!r} is not a decimal, octal (leading 0) or hex (0x) number."
            )
        numbers.append(number)
    value = 0
    for number in numbers[:-1]:
        if number > 0xFF:
            raise InvalidHost(f"{prefix} the part {number} is larger than 255.")
        value = value << 8 | number
    last_bits = 8 * (5 - len(numbers))
    if numbers[-1] >> last_bits:
        raise InvalidHost(
            f"{prefix} its last part {numbers[-1]} does not fit in the remaining {last_bits} bits."
        )
    return ipaddress.IPv4Address(value << last_bits | numbers[-1])


def _is_loopback_name(text: str) -> bool:
    """Names that resolve to loopback by definition (RFC 6761, common /etc/hosts entries)."""
    return text in _LOOPBACK_NAMES or text.endswith(".localhost")
