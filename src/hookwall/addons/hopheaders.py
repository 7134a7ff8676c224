"""HopHeaders: proxy-only headers never reach the receiver.

mitmproxy without its ``proxyauth`` addon forwards ``Proxy-Authorization`` and
``Proxy-Connection`` verbatim, which would leak a sender's proxy credentials to the internet.
Our own control headers (``X-Hookwall-*``) are stripped too, so a receiver cannot learn or be
confused by them.
"""

from __future__ import annotations

from mitmproxy import http

PROXY_ONLY = ("proxy-authorization", "proxy-connection", "proxy-authenticate")


class HopHeaders:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        headers = flow.request.headers
        for name in [n for n in headers if n.lower() in PROXY_ONLY or _ours(n)]:
            headers.pop(name, None)


def _ours(name: str) -> bool:
    return name.lower().startswith("x-hookwall-")
