"""Host patterns: canonical spelling at load time, most-specific lookup in O(labels).

Policies can hold thousands of destinations, and every request looks one up, so patterns
live in dicts keyed by their canonical text instead of being scanned in order.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import idna

__all__ = ["HostMatcher", "canonical_pattern"]

# After IDNA: letters, digits, hyphens inside, underscores (seen in some internal names).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_WILDCARD_HINT = "a '*' is only allowed alone ('*') or as the whole first label ('*.example.com')"


def _canonical_ip(text: str) -> str | None:
    """Compressed IP text for IP literals ('[2001:DB8::1]' -> '2001:db8::1'), else None."""
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if "%" in candidate:
        return None
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def _canonical_label(label: str, pattern: str) -> list[str]:
    if not label:
        raise ValueError(f"invalid host pattern {pattern!r}: empty label (two dots in a row?)")
    if label.isascii():
        labels = [label]
    else:
        try:
            labels = idna.encode(label, uts46=True).decode("ascii").split(".")
        except idna.IDNAError as exc:
            raise ValueError(f"invalid host pattern {pattern!r}: {exc}") from None
    for part in labels:
        if "*" in part:
            raise ValueError(f"invalid host pattern {pattern!r}: {_WILDCARD_HINT}")
        if not _LABEL.fullmatch(part):
            raise ValueError(
                f"invalid host pattern {pattern!r}: label {part!r} must be 1-63 letters, "
                "digits, hyphens or underscores, not starting or ending with a hyphen"
            )
    return labels


def _canonical_name(name: str, pattern: str) -> str:
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValueError(f"invalid host pattern {pattern!r}: missing domain name")
    labels: list[str] = []
    for label in name.split("."):
        labels.extend(_canonical_label(label, pattern))
    if labels[-1].isdigit():
        raise ValueError(
            f"invalid host pattern {pattern!r}: not a valid IP address, and a domain name "
            "cannot end in a numeric label"
        )
    result = ".".join(labels)
    if len(result) > 253:
        raise ValueError(f"invalid host pattern {pattern!r}: longer than 253 characters")
    return result


def canonical_pattern(text: str) -> str:
    """Canonical form of a host pattern; ValueError with an operator-facing reason if invalid.

    Lower-case, one trailing dot stripped, non-ASCII labels as IDNA A-labels, IP literals
    in ``ipaddress`` text form. Valid shapes: a name, an IP, '*.' + a name, or '*'.
    """
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise ValueError(f"invalid host pattern {text!r}: remove the whitespace")
    if text == "*":
        return "*"
    lowered = text.lower()
    if lowered.startswith("*."):
        suffix = lowered[2:]
        if _canonical_ip(suffix) is not None:
            raise ValueError(f"invalid host pattern {text!r}: a wildcard cannot cover IP addresses")
        return "*." + _canonical_name(suffix, text)
    ip = _canonical_ip(lowered)
    if ip is not None:
        return ip
    if "%" in lowered:
        raise ValueError(f"invalid host pattern {text!r}: IPv6 zone indexes are not supported")
    if ":" in lowered or lowered.startswith("["):
        raise ValueError(f"invalid host pattern {text!r}: not a valid IP address")
    return _canonical_name(lowered, text)


class HostMatcher[T]:
    """Maps canonical patterns to values; ``lookup`` returns the most specific match.

    Exact names and IPs beat wildcards, a wildcard with more labels beats one with fewer,
    and '*' matches only when nothing else does. '*.example.org' never matches the apex.
    """

    __slots__ = ("_any", "_exact", "_wildcards")

    def __init__(self) -> None:
        self._exact: dict[str, T] = {}
        self._wildcards: dict[str, T] = {}  # keyed by the suffix after '*.'
        self._any: T | None = None

    def add(self, pattern: str, value: T) -> None:
        """Register a canonical pattern; ValueError if it is already registered."""
        if pattern in self:
            raise ValueError(f"duplicate host pattern {pattern!r}")
        if pattern == "*":
            self._any = value
        elif pattern.startswith("*."):
            self._wildcards[pattern[2:]] = value
        else:
            self._exact[pattern] = value

    def __contains__(self, pattern: object) -> bool:
        if pattern == "*":
            return self._any is not None
        if isinstance(pattern, str) and pattern.startswith("*."):
            return pattern[2:] in self._wildcards
        return pattern in self._exact

    def __len__(self) -> int:
        return len(self._exact) + len(self._wildcards) + (self._any is not None)

    def lookup(self, host: str) -> T | None:
        """Most specific value for a canonical host (lower-case A-label name or IP text)."""
        found = self._exact.get(host)
        if found is not None:
            return found
        if self._wildcards and ":" not in host:
            dot = host.find(".")
            while dot != -1:
                found = self._wildcards.get(host[dot + 1 :])
                if found is not None:
                    return found
                dot = host.find(".", dot + 1)
        return self._any

    def matches(self, host: str) -> Iterator[T]:
        """Every value whose pattern matches ``host``, most specific first (O(labels))."""
        found = self._exact.get(host)
        if found is not None:
            yield found
        if self._wildcards and ":" not in host:
            dot = host.find(".")
            while dot != -1:
                found = self._wildcards.get(host[dot + 1 :])
                if found is not None:
                    yield found
                dot = host.find(".", dot + 1)
        if self._any is not None:
            yield self._any
