"""The header vocabulary: hookwall's own ``X-Hookwall-*`` names, one constant each, and the
one table of request headers never forwarded to a receiver.

Never forwarded (RFC 9110 7.6.1): the hop-by-hop and proxy-only headers (mitmproxy without
its ``proxyauth`` addon forwards ``Proxy-Authorization`` verbatim, which would leak a
sender's proxy credentials), every header a sender lists in ``Connection`` (its business
with us, not the receiver's), ``Upgrade`` (hookwall relays plain HTTP/1.1 only), and
hookwall's own namespace, so a receiver never learns or is confused by our control headers.
Framing and routing headers stay, even when listed in ``Connection``.
"""

from __future__ import annotations

from collections.abc import Iterable

OWN_PREFIX = "x-hookwall-"  # hookwall's namespace, in both directions (compared lower-case)

REASON = "X-Hookwall-Reason"  # the reason code of a refusal (core/denials.py)
REQUEST_ID = "X-Hookwall-Request-Id"  # on every answer: the exchange's request id
INTERNAL = "X-Hookwall-Internal"  # marks hookwall's own hops and retries (redirects/addon.py)
REPLAY_OF = "X-Hookwall-Replay-Of"  # `hookwall replay`: the request id replayed
REDIRECT_LOCATION = "X-Hookwall-Redirect-Location"  # a refused redirect's target
UPGRADE = "X-Hookwall-Upgrade"  # "https": a sender asks that its http:// request go as https

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "upgrade",
    }
)
# Never removed because a sender listed them in Connection: framing and routing stay intact.
PROTECTED = frozenset({"host", "content-length", "transfer-encoding"})


def connection_tokens(connection_values: Iterable[str]) -> set[str]:
    """The lower-case options of ``Connection`` (and ``Proxy-Connection``) headers."""
    return {token.strip().lower() for value in connection_values for token in value.split(",")}


def is_own(name: str) -> bool:
    """Whether ``name`` is in hookwall's own header namespace (any case)."""
    return name.lower().startswith(OWN_PREFIX)


def headers_to_strip(
    names: Iterable[str], connection_values: Iterable[str], listed: set[str] | None = None
) -> set[str]:
    """Lower-case names of the request headers that must not be forwarded."""
    if listed is None:
        listed = connection_tokens(connection_values)
    lowered = {name.lower() for name in names}
    strip = {name for name in lowered if name in HOP_BY_HOP or name in listed or is_own(name)}
    return strip - PROTECTED


def hookwall_headers(names: Iterable[str]) -> set[str]:
    """Lower-case names in hookwall's own header namespace (``X-Hookwall-*``)."""
    return {name.lower() for name in names if is_own(name)}
