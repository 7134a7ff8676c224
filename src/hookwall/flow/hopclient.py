"""Send one request through hookwall's own listener, so a redirect hop gets judged exactly
like a first request (host, DNS, blocklist, pinning, port, rule, signing, limits).

Plain HTTP/1.1 over loopback to our own port, with an absolute-form target (``https://``
targets are fine: the proxy opens and verifies TLS upstream itself). h11 does the framing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from hookwall.core.headers import REASON


@dataclass(frozen=True, slots=True)
class HopResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    @property
    def refusal(self) -> str | None:
        """hookwall's reason code when it refused this hop itself, else None. Trustworthy: the
        answer comes from our own listener, which drops every ``X-Hookwall-*`` header of a
        receiver's response before adding its own (``HopHeaders.responseheaders``)."""
        return self.header(REASON)


async def send_through_proxy(
    proxy: tuple[str, int],
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    max_body: int,
) -> HopResponse:
    """One exchange via the proxy; OSError or h11 errors on failure (callers bound the time)."""
    reader, writer = await asyncio.open_connection(*proxy)
    try:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        framing = [("Content-Length", str(len(body)))] if body or method != "GET" else []
        host = [("Host", urlsplit(url).netloc)]  # the proxy replaces it with the target's
        request = h11.Request(method=method, target=url, headers=[*host, *headers, *framing])
        writer.write(conn.send(request) or b"")
        if body:
            writer.write(conn.send(h11.Data(data=body)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        response: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_body:
                    raise ValueError(f"hop response larger than {max_body} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if response is None:
            raise OSError("the proxy closed the connection without a response")
        return HopResponse(response.status_code, list(response.headers), b"".join(chunks))
    finally:
        writer.close()
