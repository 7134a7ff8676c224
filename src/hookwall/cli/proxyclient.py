"""A tiny HTTP client that sends one request through a hookwall proxy and reports its verdict.

Used by ``hookwall replay`` and ``hookwall send-test``. Standard library only, and explicit
about what it sends: headers go out in the given order with the given names, nothing is added
but ``Host``, ``Content-Length`` and proxy credentials. For https:// URLs it opens the CONNECT
tunnel itself, so a refusal *of the CONNECT* (403 address-blocked, ...) is read and reported
like any other answer instead of surfacing as an opaque "Tunnel connection failed".
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_PROXY = "http://127.0.0.1:8080"
# Never forwarded from a stored request: framing, hop-by-hop, and our own control headers.
_NOT_SENT = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    }
)


class ProxyClientError(Exception):
    """The proxy could not be reached, or answered something that is not HTTP."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = None  # a Proxy-Authorization value

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    phrase: str
    headers: list[tuple[str, str]]
    body: bytes
    on_connect: bool = False  # the proxy refused the CONNECT itself

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)


def parse_proxy(text: str, *, user: str | None = None, token: str | None = None) -> Proxy:
    """``http://[user:token@]host:port``; ``user``/``token`` (e.g. --sender and an environment
    variable) take precedence over the URL's userinfo."""
    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme != "http":
        raise ValueError(f"the proxy URL must be http://HOST:PORT, got {text!r}")
    try:
        port = parts.port or 8080
    except ValueError as exc:
        raise ValueError(f"bad port in proxy URL {text!r}: {exc}") from None
    if not parts.hostname:
        raise ValueError(f"no host in proxy URL {text!r}")
    name = user if user is not None else (unquote(parts.username) if parts.username else None)
    secret = token if token is not None else (unquote(parts.password or "") or None)
    authorization = None
    if name is not None:
        pair = f"{name}:{secret or ''}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
    return Proxy(parts.hostname, port, authorization)


def sendable_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Stored request headers minus framing, hop-by-hop and ``X-Hookwall-*`` ones."""
    return [
        (name, value)
        for name, value in headers
        if name.lower() not in _NOT_SENT and not name.lower().startswith("x-hookwall-")
    ]


def _authority(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"


def send(
    proxy: Proxy,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    ca_file: Path | None = None,
    timeout: float = 30.0,
) -> Reply:
    """Send one request through the proxy; the proxy's (or the receiver's) answer.

    ``headers`` go out as given (filter stored ones with ``sendable_headers`` first), after
    ``Host`` and before ``Content-Length``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    host = parts.hostname
    authority = _authority(host, port, scheme)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        if scheme == "http":
            conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
            target = f"http://{authority}{path}"
            extra = [("Proxy-Authorization", proxy.authorization)] if proxy.authorization else []
        else:
            tunnel = _connect(proxy, host, port, timeout)
            if isinstance(tunnel, Reply):
                return tunnel
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.sock = context.wrap_socket(tunnel, server_hostname=host)
            target, extra = path, []
        with contextlib.closing(conn):
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", authority)
            for name, value in [*extra, *headers]:
                conn.putheader(name, value)
            if body or method.upper() not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            return Reply(response.status, response.reason, list(response.getheaders()), data)
    except (OSError, http.client.HTTPException) as exc:
        raise ProxyClientError(f"{type(exc).__name__}: {exc}") from exc


def _connect(proxy: Proxy, host: str, port: int, timeout: float) -> socket.socket | Reply:
    """Open a CONNECT tunnel; the socket, or the proxy's refusal."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = http.client.HTTPResponse(sock, method="CONNECT")
    try:
        response.begin()
        if response.status == 200:
            return sock
        data = response.read() if response.length else b""
    except BaseException:
        sock.close()
        raise
    sock.close()
    return Reply(
        response.status, response.reason, list(response.getheaders()), data, on_connect=True
    )
