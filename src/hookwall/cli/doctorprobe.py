"""What ``hookwall doctor`` asks the world: two requests to hookwall.invalid through the proxy
(plain, and through a CONNECT with a TLS handshake trusting exactly one bundle), and the CA
bundles on disk. ``cli/doctorchecks.py`` judges the answers.

Standard library only, and explicit about what goes out: the request line, ``Host``, the
proxy credentials of the URL (``Proxy-Authorization: Basic``, as clients send them) and a
``User-Agent``. Only hookwall.invalid is asked for, which hookwall answers itself: nothing
leaves the proxy. Every read is bounded (the proxy may not be hookwall at all).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from hookwall import __version__
from hookwall.cli.doctorchecks import WHOAMI_HTTP, Bundle, Probe, ProxyURL, Trust
from hookwall.core.headers import REASON
from hookwall.selfanswer.answer import NAME, fingerprint

MAX_BODY = 64 * 1024  # a whoami answer is a few hundred bytes
MAX_BUNDLE = 16 * 1024 * 1024  # the largest system bundles are about 250 KiB
MAX_DIR_FILES = 2000
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_AGENT = f"hookwall-doctor/{__version__}"


class NetworkProbes:
    """The real ``Probes``: each request is bounded by ``timeout`` seconds per step."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def whoami(self, proxy: ProxyURL) -> Probe:
        try:
            conn = self._connection(proxy)
        except OSError as exc:
            return Probe("unreachable", detail=_said(exc))
        with contextlib.closing(conn):
            try:
                conn.putrequest("GET", WHOAMI_HTTP, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", NAME)
                for name, value in _credentials(proxy):
                    conn.putheader(name, value)
                conn.putheader("User-Agent", _AGENT)
                conn.endheaders()
                return _answer(conn.getresponse())
            except (OSError, http.client.HTTPException) as exc:
                return Probe("bad-reply", detail=_said(exc))

    def handshake(self, proxy: ProxyURL, trust: Trust) -> Probe:
        try:
            context = _context(trust)
        except (OSError, ssl.SSLError) as exc:
            return Probe("untrusted", detail=f"the bundle cannot be loaded: {_said(exc)}")
        try:
            sock = socket.create_connection(_address(proxy), timeout=self.timeout)
        except OSError as exc:
            return Probe("unreachable", detail=_said(exc))
        with contextlib.closing(sock):
            try:
                refused = _connect(sock, proxy)
            except (OSError, http.client.HTTPException) as exc:
                return Probe("bad-reply", detail=_said(exc))
            if refused is not None:
                return refused
            try:
                tls = context.wrap_socket(sock, server_hostname=NAME)
            except ssl.SSLCertVerificationError as exc:
                return Probe("untrusted", detail=exc.verify_message or _said(exc))
            except (OSError, ssl.SSLError) as exc:
                return Probe("tls-failed", detail=_said(exc))
            conn = http.client.HTTPConnection(NAME, 443, timeout=self.timeout)
            conn.sock = tls
            with contextlib.closing(conn):
                try:
                    conn.request("GET", "/whoami", headers={"User-Agent": _AGENT})
                    return _answer(conn.getresponse())
                except (OSError, http.client.HTTPException) as exc:
                    return Probe("bad-reply", detail=_said(exc))

    def bundle(self, path: str, directory: bool) -> Bundle:
        where = Path(path)
        try:
            if not where.exists():
                return Bundle(path, exists=False)
            if where.is_dir():
                files = sorted(p for p in where.iterdir() if p.is_file())[:MAX_DIR_FILES]
                found = [fp for file in files for fp in _certificates(file, skip_unreadable=True)]
                return Bundle(path, True, is_dir=True, fingerprints=tuple(found))
            return Bundle(path, True, fingerprints=tuple(_certificates(where)))
        except PermissionError as exc:
            return Bundle(path, True, readable=False, is_dir=where.is_dir(), error=_said(exc))
        except OSError as exc:
            return Bundle(path, True, readable=False, error=_said(exc))

    def _connection(self, proxy: ProxyURL) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(*_address(proxy), timeout=self.timeout)
        conn.connect()
        return conn


def _address(proxy: ProxyURL) -> tuple[str, int]:
    assert proxy.host is not None and proxy.port is not None
    return proxy.host, proxy.port


def _credentials(proxy: ProxyURL) -> list[tuple[str, str]]:
    """What a client sends for ``http://name:token@host``: Basic name:token."""
    if proxy.user is None:
        return []
    pair = f"{proxy.user}:{proxy.token or ''}".encode()
    return [("Proxy-Authorization", "Basic " + base64.b64encode(pair).decode())]


def _connect(sock: socket.socket, proxy: ProxyURL) -> Probe | None:
    """CONNECT hookwall.invalid:443; None when the tunnel is open, else the proxy's answer."""
    target = f"{NAME}:443"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", f"User-Agent: {_AGENT}"]
    lines += [f"{name}: {value}" for name, value in _credentials(proxy)]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = http.client.HTTPResponse(sock, method="CONNECT")
    response.begin()
    if response.status == 200:
        return None
    answer = _answer(response)
    return Probe("refused", answer.status, answer.reason, answer.document, answer.detail)


def _answer(response: http.client.HTTPResponse) -> Probe:
    body = response.read(MAX_BODY) if response.length != 0 else b""
    document: Any = None
    with contextlib.suppress(ValueError):
        document = json.loads(body)
    return Probe(
        "answered",
        response.status,
        response.getheader(REASON),
        document if isinstance(document, dict) else None,
        f"{response.status} {response.reason}",
    )


def _context(trust: Trust) -> ssl.SSLContext:
    """Exactly ``trust``: one bundle, or the system's compiled-in store (not the variables)."""
    if trust.cafile is not None or trust.capath is not None:
        return ssl.create_default_context(cafile=trust.cafile, capath=trust.capath)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and checks the name
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if Path(paths.openssl_cafile).is_file() else None
    capath = paths.openssl_capath if Path(paths.openssl_capath).is_dir() else None
    if cafile is not None or capath is not None:
        context.load_verify_locations(cafile=cafile, capath=capath)
    return context


def _certificates(path: Path, *, skip_unreadable: bool = False) -> list[str]:
    """The SHA-256 of each PEM certificate in the file (unparseable blocks are skipped)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BUNDLE)
    except PermissionError:
        if skip_unreadable:  # one file of a directory: the others may still be read
            return []
        raise
    found = []
    for block in _PEM.findall(data):
        try:
            cert = x509.load_pem_x509_certificate(block)
        except ValueError:
            continue
        found.append(fingerprint(cert.fingerprint(hashes.SHA256())))
    return found


def _said(exc: BaseException) -> str:
    """An error in the words of the library that met it, without a traceback."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
