"""mitmproxy's messages that reach a hookwall user, said in hookwall's words and flags.

mitmproxy's own text speaks of mitmproxy ("You may need to adjust mitmproxy's
tls_version_server_min option", "the proxy's certificate", "delete all CA-related files in
your ~/.mitmproxy folder"), which a hookwall operator cannot act on: hookwall has no such
option, or another name for it. Each row of the tables below is one message of mitmproxy's,
matched by its fixed words, with what hookwall says instead: what happened, and what to do
with hookwall's own flags and policy keys. Where they surface:

- ``library_line``: a whole line mitmproxy logged, for the ``library_log`` event
  (``deliveries/logs.py``) and a start-up error on stderr (``mitm/startup.py``);
- ``receiver_tls``: why TLS with a receiver failed (a flow's error: the exchange event's
  ``error`` and the 502 ``tls-failed`` body, ``flow/errorpages.py``);
- ``sender_tls``: why a sender's TLS handshake with hookwall failed (the ``tls-failed``
  CONNECT event, ``deliveries/addons/exchangelog.py``).

A message no row knows is left as mitmproxy wrote it. ``tests/unit/core/test_librarymessages.py``
builds each message with mitmproxy's own code, so a row that stops matching fails there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hookwall.core.listenerrors import cannot_listen

__all__ = ["Said", "library_line", "receiver_tls", "sender_tls"]


@dataclass(frozen=True, slots=True)
class Said:
    """What happened, and what to do about it (None when there is nothing to do)."""

    what: str
    fix: str | None = None

    def sentence(self) -> str:
        return f"{self.what}; {self.fix}" if self.fix else self.what


_Row = tuple[re.Pattern[str], Callable[[re.Match[str]], Said]]

_TRUST_FIX = (
    "install the CA printed by `hookwall ca --path` in the sender's trust store "
    "(`hookwall doctor` checks a sender's setup), or have it send http:// to a destination "
    "with `upgrade: true`"
)

# Why TLS with a receiver failed (mitmproxy.proxy.layers.tls.TLSLayer.receive_handshake_data).
RECEIVER_TLS: tuple[_Row, ...] = (
    (
        re.compile(r"^Certificate verify failed: (?P<why>.+)$", re.DOTALL),
        lambda m: Said(
            f"the receiver's certificate did not verify ({m['why']})",
            "if a private CA issued it, add that CA to defaults.ca_bundle in the policy (a "
            "PEM file); hookwall never turns verification off",
        ),
    ),
    (
        re.compile(r"^The remote server and mitmproxy cannot agree on a TLS version to use\."),
        lambda m: Said(
            "the receiver offers no TLS version hookwall speaks (TLS 1.2 or later)",
            "the receiver's TLS needs upgrading: hookwall has no setting for older versions",
        ),
    ),
    (
        re.compile(r"^The remote server does not speak TLS\.$"),
        lambda m: Said(
            "the receiver answered without TLS on this port",
            "check the URL's port, and whether the receiver takes HTTPS there (an http:// "
            "webhook to a destination with `upgrade: true` is sent over TLS)",
        ),
    ),
)

# Why a sender's TLS handshake failed (mitmproxy.proxy.layers.tls.ClientTLSLayer).
SENDER_TLS: tuple[_Row, ...] = (
    (
        re.compile(
            r"^The client (?P<may>does not|may not) trust the proxy's certificate for "
            r"(?P<dest>.+?) \((?P<why>.*)\)$",
            re.DOTALL,
        ),
        lambda m: Said(
            f"the sender {'may not trust' if m['may'] == 'may not' else 'does not trust'} "
            f"hookwall's certificate for {m['dest']} ({m['why']})",
            _TRUST_FIX,
        ),
    ),
    (
        re.compile(
            r"^The client disconnected during the handshake\. If this happens consistently "
            r"for (?P<dest>.+?), this may indicate that the client does not trust"
        ),
        lambda m: Said(
            f"the sender closed the connection during the TLS handshake for {m['dest']}",
            f"if it does so every time, it does not trust hookwall's certificate: {_TRUST_FIX}",
        ),
    ),
    (
        re.compile(r"^Client and mitmproxy cannot agree on a TLS version to use\."),
        lambda m: Said(
            "the sender offers no TLS version hookwall accepts (TLS 1.2 or later)",
            "upgrade the sender's TLS library, or have it send http:// to a destination "
            "with `upgrade: true`, so that hookwall makes the TLS connection to the receiver",
        ),
    ),
)


def _said(rows: tuple[_Row, ...], message: str) -> Said | None:
    for pattern, say in rows:
        match = pattern.search(message)
        if match is not None:
            return say(match)
    return None


def receiver_tls(detail: str) -> Said | None:
    """hookwall's words for why TLS with a receiver failed, or None for another message."""
    return _said(RECEIVER_TLS, detail)


def sender_tls(detail: str) -> Said | None:
    """hookwall's words for why a sender's TLS handshake failed, or None."""
    return _said(SENDER_TLS, detail)


def _handshake(who: str, said: Said | None) -> str | None:
    return f"{who} failed: {said.sentence()}" if said else None


def _bind(m: re.Match[str]) -> str:
    error = m["error"].split("\nTry specifying", 1)[0].strip()
    return cannot_listen("proxy", m["where"], error)


# Whole lines mitmproxy logs (a library_log event, or a start-up error on stderr).
LINES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str | None]], ...] = (
    # mitmproxy.proxy.mode_servers: "<description> failed to listen on HOST:PORT with <error>
    # \nTry specifying a different port by using `--mode regular@PORT`."
    (
        re.compile(r"failed to listen on (?P<where>\S+?) with (?P<error>.*)", re.DOTALL),
        _bind,
    ),
    (
        re.compile(r"^Server TLS handshake failed\. (?P<detail>.*)$", re.DOTALL),
        lambda m: _handshake("TLS with a receiver", receiver_tls(m["detail"])),
    ),
    (
        re.compile(r"^Client TLS handshake failed\. (?P<detail>.*)$", re.DOTALL),
        lambda m: _handshake("a sender's TLS handshake with hookwall", sender_tls(m["detail"])),
    ),
    # mitmproxy.addons.tlsconfig, when the CA in the data directory (confdir) has expired.
    (
        re.compile(r"^The mitmproxy certificate authority has expired!"),
        lambda m: (
            "hookwall's CA certificate has expired: senders refuse the certificates it "
            "signs; start hookwall with a new CA (`--ca PEM`), or move the mitmproxy-ca* "
            "files out of the data directory so that hookwall makes a new one, then install "
            "the new certificate (`hookwall ca --path`) in the senders' trust stores"
        ),
    ),
)


def library_line(message: str) -> str | None:
    """hookwall's sentence for a line mitmproxy logged, or None when no row knows it."""
    for pattern, say in LINES:
        match = pattern.search(message)
        if match is not None:
            return say(match)
    return None
