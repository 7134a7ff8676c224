"""Which of the sender's headers a redirect hop may carry: credentials stay with their origin.

A sender's ``Authorization`` or ``Cookie`` was meant for the URL it asked for. When a receiver
redirects to another origin (scheme, host or port differ), the next hop goes without them, as
curl (host, and since 7.83 scheme or port), Go (another domain), requests (another host, or an
https-to-http downgrade) and browsers do. A destination may opt in with
``redirects: {keep_credentials: true}``.

Which names are credentials is a predicate: the proxy passes the redaction rules
(``hookwall.deliveries.redaction``), so a header hidden from the logs never follows a
redirect elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from hookwall.destinations.hostname import InvalidHost, canonicalize_host

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin | None:
    """(scheme, canonical host, effective port) of an absolute http(s) URL; None if unreadable."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
        host = canonicalize_host(parts.hostname or "").text
    except (ValueError, InvalidHost):
        return None
    if port is None:
        return None
    return scheme, host, port


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs share scheme, host and port; an unreadable URL shares nothing."""
    first = origin_of(a)
    return first is not None and first == origin_of(b)


def credentials_to_drop(
    names: Iterable[str],
    previous_url: str,
    next_url: str,
    *,
    keep_credentials: bool,
    is_credential: Callable[[str], bool],
) -> frozenset[str]:
    """Lower-case names of the headers a hop from ``previous_url`` to ``next_url`` must not
    carry: every credential header when the origin changes, unless the destination opted in."""
    if keep_credentials or same_origin(previous_url, next_url):
        return frozenset()
    return frozenset(name.lower() for name in names if is_credential(name))
