"""HopHeaders: hop-by-hop and proxy-only headers never reach the receiver (RFC 9110 7.6.1).

mitmproxy without its ``proxyauth`` addon forwards ``Proxy-Authorization`` and
``Proxy-Connection`` verbatim, which would leak a sender's proxy credentials to the internet.
Headers named in ``Connection`` are the sender's business with us, not the receiver's.
``Upgrade`` is dropped too: hookwall relays plain HTTP/1.1 exchanges only (no h2c, no
websockets). Our own control headers (``X-Hookwall-*``) are stripped so a receiver cannot
learn or be confused by them.

The other way round, every ``X-Hookwall-*`` header of a receiver's response (any case, 1xx
included: mitmproxy reads those as the flow's response too) is dropped in ``responseheaders``,
the first hook that sees it, on every path: direct, inside intercepted TLS, and the hops and
retries hookwall sends through its own listener. So a receiver cannot pose as a hookwall
refusal, and a hop's ``X-Hookwall-Reason`` is always hookwall's own verdict on that hop.
"""

from __future__ import annotations

from mitmproxy import http

from hookwall.flow.respond import is_own_response
from hookwall.flow.state import state_of

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


def connection_tokens(connection_values: list[str]) -> set[str]:
    """The lower-case options of ``Connection`` (and ``Proxy-Connection``) headers."""
    return {token.strip().lower() for value in connection_values for token in value.split(",")}


def headers_to_strip(
    names: list[str], connection_values: list[str], listed: set[str] | None = None
) -> set[str]:
    """Lower-case names of the request headers that must not be forwarded."""
    if listed is None:
        listed = connection_tokens(connection_values)
    strip = {
        n.lower() for n in names if n.lower() in HOP_BY_HOP or n.lower().startswith("x-hookwall-")
    }
    strip |= {n.lower() for n in names if n.lower() in listed}
    return strip - PROTECTED


def hookwall_headers(names: list[str]) -> set[str]:
    """Lower-case names in hookwall's own header namespace (``X-Hookwall-*``)."""
    return {n.lower() for n in names if n.lower().startswith("x-hookwall-")}


class HopHeaders:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        headers = flow.request.headers
        connection = headers.get_all("connection") + headers.get_all("proxy-connection")
        listed = connection_tokens(connection) if connection else set()
        state = state_of(flow)
        if "close" in listed and state is not None:
            # The sender wants the connection closed after this exchange: mitmproxy reads that
            # from the very header we strip, so the response says it (ExchangeEnd).
            state.close_after("sender-asked")
        for name in headers_to_strip(list(headers.keys()), connection, listed):
            del headers[name]

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or is_own_response(flow):
            return  # hookwall's refusal, answered in the request phase: its headers stay
        for name in hookwall_headers(list(response.headers.keys())):
            del response.headers[name]
        if response.trailers is not None:  # HTTP/1 has none in mitmproxy 12; defence only
            for name in hookwall_headers(list(response.trailers.keys())):
                del response.trailers[name]
