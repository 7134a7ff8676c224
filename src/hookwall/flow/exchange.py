"""The neutral ``Exchange`` (``core/exchange.py``) of a mitmproxy flow, as it stands now.

Built where an addon hands a request to its concern's logic; cheap (a copy of the header
list), and built again after addons changed the request (signing sees what will be sent).
"""

from __future__ import annotations

from mitmproxy import http

from hookwall.core.exchange import Exchange
from hookwall.flow.state import FlowState


def exchange_of(flow: http.HTTPFlow, state: FlowState | None = None) -> Exchange:
    request = flow.request
    peer = flow.client_conn.peername
    return Exchange(
        method=request.method,
        url=(state.original_url if state else "") or request.url,
        headers=tuple(  # decoded as mitmproxy's Headers.items does, a little faster
            [
                (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
                for name, value in request.headers.fields
            ]
        ),
        body=request.raw_content,
        client=str(peer[0]) if peer else None,
        sender=state.sender if state else None,
    )
