"""mitmproxy's messages in hookwall's words (core/librarymessages.py), one test per row.

Each message is made by mitmproxy's own code (its TLS layers, its listener, its TLS config
addon), not copied here: when an upgrade changes a text, its row stops matching and its test
fails. The proxy tests (tests/integration/test_library_messages.py) show the same messages
reaching a user through the real proxy.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import connection, options
from mitmproxy.addons import proxyserver, tlsconfig
from mitmproxy.proxy import commands, context, mode_servers
from mitmproxy.proxy.layers import tls
from mitmproxy.test import taddons
from OpenSSL import SSL

from hookwall.core.librarymessages import Said, library_line, receiver_tls, sender_tls
from tests.support.certs import expired_ca_pem

# What mitmproxy's texts say of itself (hookwall's data directory does hold mitmproxy-ca*).
MITMPROXY_WORDS = (
    "and mitmproxy", "mitmproxy's", "restarting mitmproxy", "the proxy's", "--mode", "--set",
    "_min option", "~/.mitmproxy",
)  # fmt: skip


def assert_hookwalls(text: str) -> None:
    """No word of mitmproxy's own vocabulary is left in what hookwall says."""
    assert not [word for word in MITMPROXY_WORDS if word in text], text


def _context(sni: str | None = "hooks.test") -> context.Context:
    client = connection.Client(
        peername=("127.0.0.1", 5000), sockname=("127.0.0.1", 8080), timestamp_start=0.0
    )
    client.sni = sni
    ctx = context.Context(client, options.Options())
    ctx.server.address = ("127.0.0.2", 443)
    return ctx


def _drain(generator: Generator[Any, Any, Any]) -> tuple[list[str], Any]:
    """Run a layer's command generator; the messages it logged, and what it returned."""
    logged: list[str] = []
    try:
        command = next(generator)
        while True:
            if isinstance(command, commands.Log):
                logged.append(command.message)
            command = generator.send(None)
    except StopIteration as stop:
        return logged, stop.value


# -- a sender's handshake failed (ClientTLSLayer.on_handshake_error) ---------------------------


def sender_failure(openssl_error: str) -> tuple[str, str]:
    """mitmproxy's line for a failed sender handshake, and the connection's error."""
    ctx = _context()
    tls.ServerTLSLayer(ctx)  # beneath it, as in mitmproxy's stack for a CONNECT
    layer = tls.ClientTLSLayer(ctx)
    layer.conn.sni = "hooks.test"  # read from the ClientHello
    logged, _ = _drain(layer.on_handshake_error(openssl_error))
    assert layer.conn.error is not None
    return (logged[0] if logged else ""), layer.conn.error


@pytest.mark.parametrize(
    ("openssl_error", "expected"),
    [
        (
            "('SSL routines', '', 'tlsv1 alert unknown ca')",
            "the sender does not trust hookwall's certificate for hooks.test",
        ),
        (
            "('SSL routines', '', 'sslv3 alert certificate expired')",
            "the sender may not trust hookwall's certificate for hooks.test",
        ),
    ],
)
def test_a_sender_that_does_not_trust_the_ca_is_told_hookwall_ca_path(
    openssl_error: str, expected: str
) -> None:
    line, error = sender_failure(openssl_error)
    said = sender_tls(error)
    assert said is not None and said.what.startswith(expected)
    assert openssl_error in said.what  # OpenSSL's own reason is kept
    assert said.fix is not None and "`hookwall ca --path`" in said.fix
    translated = library_line(line)
    assert translated == f"a sender's TLS handshake with hookwall failed: {said.sentence()}"
    assert_hookwalls(translated)


def test_a_sender_that_hangs_up_in_the_handshake_is_told_the_same() -> None:
    _, error = sender_failure("connection closed")  # logged at INFO: only the event has it
    said = sender_tls(error)
    assert said == Said(
        "the sender closed the connection during the TLS handshake for hooks.test",
        "if it does so every time, it does not trust hookwall's certificate: install the CA "
        "printed by `hookwall ca --path` in the sender's trust store (`hookwall doctor` "
        "checks a sender's setup), or have it send http:// to a destination with "
        "`upgrade: true`",
    )


def test_a_sender_with_only_old_tls_is_not_told_a_mitmproxy_option() -> None:
    line, error = sender_failure("('SSL routines', '', 'unsupported protocol')")
    assert "tls_version_client_min" in error  # what mitmproxy says
    said = sender_tls(error)
    assert said is not None and said.what.startswith("the sender offers no TLS version")
    assert said.fix is not None and "`upgrade: true`" in said.fix
    translated = library_line(line)
    assert translated is not None
    assert_hookwalls(translated)


# -- TLS with a receiver failed (TLSLayer.receive_handshake_data) ------------------------------


class _FailingHandshake(SSL.Connection):
    """A pyOpenSSL connection whose handshake fails with this OpenSSL error."""

    def __init__(self, error: tuple[str, str, str]) -> None:
        super().__init__(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
        self.error = error

    def do_handshake(self) -> None:
        raise SSL.Error([self.error])


def receiver_failure(openssl_error: tuple[str, str, str]) -> tuple[str, str]:
    """mitmproxy's reason for a failed receiver handshake, and the line it logs for it."""
    layer = tls.ServerTLSLayer(_context())
    layer.tls = _FailingHandshake(openssl_error)
    _, (done, error) = _drain(layer.receive_handshake_data(b""))
    assert not done and isinstance(error, str)
    logged, _ = _drain(layer.on_handshake_error(error))
    return error, logged[0]


@pytest.mark.parametrize(
    ("openssl_error", "what", "fix"),
    [
        (
            ("SSL routines", "", "certificate verify failed"),
            "the receiver's certificate did not verify (",
            "defaults.ca_bundle",
        ),
        (
            ("SSL routines", "", "tlsv1 alert protocol version"),
            "the receiver offers no TLS version hookwall speaks (TLS 1.2 or later)",
            "no setting for older versions",
        ),
        (
            ("SSL routines", "", "wrong version number"),
            "the receiver answered without TLS on this port",
            "`upgrade: true`",
        ),
    ],
)
def test_a_receivers_tls_failure_is_said_with_hookwalls_settings(
    openssl_error: tuple[str, str, str], what: str, fix: str
) -> None:
    error, line = receiver_failure(openssl_error)
    said = receiver_tls(error)
    assert said is not None and said.what.startswith(what), (error, said)
    assert said.fix is not None and fix in said.fix
    assert_hookwalls(said.sentence())
    assert library_line(line) == f"TLS with a receiver failed: {said.sentence()}"


def test_an_unknown_tls_failure_is_left_as_mitmproxy_said_it() -> None:
    error, line = receiver_failure(("SSL routines", "", "something new"))
    assert receiver_tls(error) is None and library_line(line) is None
    assert sender_tls("OpenSSL Error([])") is None


# -- a whole line: the listener (mode_servers) and the CA (tlsconfig) -------------------------


def test_a_taken_port_names_hookwalls_flag_not_mitmproxys() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        message = asyncio.run(_listen_fails(port))
    assert "Try specifying a different port by using `--mode" in message  # mitmproxy's advice
    translated = library_line(message)
    assert translated == (
        f"hookwall: cannot listen for senders on 127.0.0.1:{port}: the port is already in use "
        "(another hookwall, or another program); pass --listen HOST:PORT with a free port "
        "(port 0 picks one), or stop what holds it"
    )
    assert_hookwalls(translated)


async def _listen_fails(port: int) -> str:
    server = proxyserver.Proxyserver()  # type: ignore[no-untyped-call]
    with taddons.context(server) as tctx:  # type: ignore[no-untyped-call]
        tctx.options.listen_host, tctx.options.listen_port = "127.0.0.1", port
        instance: mode_servers.ServerInstance[Any] = mode_servers.ServerInstance.make(
            "regular", server
        )
        with pytest.raises(OSError) as failed:
            await instance.start()
    assert failed.value.errno == errno.EADDRINUSE
    return str(failed.value)


def test_an_expired_ca_is_not_told_to_delete_mitmproxy_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "mitmproxy-ca.pem").write_bytes(expired_ca_pem())
    addon = tlsconfig.TlsConfig()
    tctx = taddons.context(addon)  # type: ignore[no-untyped-call]
    with caplog.at_level(logging.WARNING), tctx:
        tctx.configure(addon, confdir=str(tmp_path))  # type: ignore[no-untyped-call]
    (message,) = [r.getMessage() for r in caplog.records if "expired" in r.getMessage()]
    assert "~/.mitmproxy" in message  # what mitmproxy says
    translated = library_line(message)
    assert translated is not None and translated.startswith("hookwall's CA certificate has expired")
    assert "--ca PEM" in translated and "`hookwall ca --path`" in translated
    assert_hookwalls(translated)


def test_other_lines_are_left_alone() -> None:
    assert library_line("server connect hooks.test:443") is None
