"""HopHeaders: the headers never forwarded (``core/headers.py``'s table) never reach the
receiver: hop-by-hop and proxy-only ones, those a sender lists in ``Connection``, ``Upgrade``,
and hookwall's own ``X-Hookwall-*``.

The other way round, every ``X-Hookwall-*`` header of a receiver's response (any case, 1xx
included: mitmproxy reads those as the flow's response too) is dropped in ``responseheaders``,
the first hook that sees it, on every path: direct, inside intercepted TLS, and the hops and
retries hookwall sends through its own listener. So a receiver cannot pose as a hookwall
refusal, and a hop's ``X-Hookwall-Reason`` is always hookwall's own verdict on that hop.
"""

from __future__ import annotations

from mitmproxy import http

from hookwall.core.headers import connection_tokens, headers_to_strip, hookwall_headers
from hookwall.flow.respond import is_own_response
from hookwall.flow.state import state_of


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
