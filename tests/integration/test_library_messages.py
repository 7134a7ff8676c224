"""mitmproxy's messages reach users in hookwall's words, through the real proxy
(core/librarymessages.py; tests/unit/core/test_librarymessages.py has one test per row).

Where each can be read: the 502 body a sender gets, the exchange event's ``error``, and the
``library_log`` line mitmproxy's warning becomes. None of them may name an option of
mitmproxy's, or "the proxy's certificate".
"""

from __future__ import annotations

import json
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.support.certs import expired_ca_pem
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import Event, ProxyProcess, trusting
from tests.support.receivers import Receiver, start_receiver, tls_server_context

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
defaults:
  network:
    deny: [special-purpose]
    allow: [127.0.0.2/32]
    ports: ["1-65535"]
  ca_bundle: {ca}
"""
MITMPROXY_WORDS = ("mitmproxy", "the proxy's", "_min option", "--set", "--mode")


def hookwalls(text: str) -> str:
    assert not [word for word in MITMPROXY_WORDS if word in text], text
    return text


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=["hooks.test"])


def serve(context: ssl.SSLContext | None) -> Iterator[Receiver]:
    server = start_receiver("127.0.0.2", ssl_context=context)
    yield server
    server.stop()


@pytest.fixture
def untrusted() -> Iterator[Receiver]:
    """A receiver whose certificate no CA the proxy trusts issued."""
    yield from serve(tls_server_context(trustme.CA(), "hooks.test"))


@pytest.fixture
def old_tls(receiver_ca: trustme.CA) -> Iterator[Receiver]:
    """A receiver that speaks TLS 1.1 at most (hookwall: 1.2 or later)."""
    yield from serve(_tls_1_1(tls_server_context(receiver_ca, "hooks.test")))


def _tls_1_1(context: ssl.SSLContext) -> ssl.SSLContext:
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def library_log(proxy: ProxyProcess, start: int, beginning: str) -> Event:
    return proxy.wait_for(
        lambda e: e.get("event") == "library_log" and e["message"].startswith(beginning),
        start=start,
    )


def refused_by_the_receivers_tls(proxy: ProxyProcess, receiver: Receiver) -> tuple[str, Event]:
    """GET through the proxy: the 502 body's message, and the exchange event."""
    url = f"https://hooks.test:{receiver.port}/"
    start = proxy.mark()
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=10) as client:
        answer = client.get(url)
    assert answer.status_code == 502 and answer.json()["error"] == "tls-failed", answer.text
    event = proxy.exchange(url=url, start=start)
    assert event["reason"] == "tls-failed" and event["error"] == answer.json()["message"]
    assert event["connect_ms"] is None  # never ready for the request (README, "Timings")
    return answer.json()["message"], event


def test_a_receiver_certificate_that_does_not_verify_names_ca_bundle(
    proxy: ProxyProcess, untrusted: Receiver
) -> None:
    start = proxy.mark()
    message, _ = refused_by_the_receivers_tls(proxy, untrusted)
    assert hookwalls(message).startswith(
        "TLS with the receiver failed: the receiver's certificate did not verify (unable to "
        "get local issuer certificate); if a private CA issued it, add that CA to "
        "defaults.ca_bundle in the policy"
    )
    line = library_log(proxy, start, "TLS with a receiver failed")
    assert "defaults.ca_bundle" in hookwalls(line["message"])


def test_a_receiver_with_only_old_tls_is_not_a_mitmproxy_option(
    proxy: ProxyProcess, old_tls: Receiver
) -> None:
    start = proxy.mark()
    message, _ = refused_by_the_receivers_tls(proxy, old_tls)
    assert "offers no TLS version hookwall speaks (TLS 1.2 or later)" in hookwalls(message)
    line = library_log(proxy, start, "TLS with a receiver failed")
    assert "TLS 1.2 or later" in hookwalls(line["message"])


def test_https_to_a_plain_http_port_says_so(proxy: ProxyProcess, receiver: Receiver) -> None:
    message, _ = refused_by_the_receivers_tls(proxy, receiver)
    assert "the receiver answered without TLS on this port" in hookwalls(message)


def sender_failed(proxy: ProxyProcess, start: int) -> tuple[Event, Event]:
    """The tls-failed CONNECT event of a sender's failed handshake, and the log line."""
    event = proxy.exchange(method="CONNECT", reason="tls-failed", start=start)
    line = library_log(proxy, start, "a sender's TLS handshake with hookwall failed")
    return event, line


def test_a_sender_that_does_not_trust_hookwalls_ca_is_told_how(
    proxy: ProxyProcess, tls_twins: tuple[Receiver, Receiver]
) -> None:
    allowed, _ = tls_twins
    start = proxy.mark()
    with pytest.raises(httpx.ConnectError):  # trusts the system's CAs only
        httpx.get(f"https://hooks.test:{allowed.port}/", proxy=proxy.url, timeout=10)
    event, line = sender_failed(proxy, start)
    for text in (event["error"], line["message"]):
        assert "does not trust hookwall's certificate for hooks.test" in hookwalls(text)
        assert "`hookwall ca --path`" in text and "unknown ca" in text


def test_a_sender_with_only_old_tls_is_told_its_tls_not_the_ca(
    proxy: ProxyProcess, tls_twins: tuple[Receiver, Receiver]
) -> None:
    allowed, _ = tls_twins
    context = _tls_1_1(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    context.load_verify_locations(str(proxy.ca_cert))
    start = proxy.mark()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://hooks.test:{allowed.port}/", proxy=proxy.url, verify=context)
    event, line = sender_failed(proxy, start)
    for text in (event["error"], line["message"]):
        assert "the sender offers no TLS version hookwall accepts" in hookwalls(text)
    assert "certificate" not in event["error"]  # it is not about trust


def test_an_expired_ca_is_told_in_hookwalls_flags(
    start_proxy: ProxyLauncher, tmp_path: Path
) -> None:
    pem = tmp_path / "expired-ca.pem"
    pem.write_bytes(expired_ca_pem())
    proxy = start_proxy(POLICY, args=["--ca", str(pem)])
    line = library_log(proxy, 0, "hookwall's CA certificate has expired")
    text = line["message"].replace("mitmproxy-ca*", "")  # the files' names in the data dir
    assert "`--ca PEM`" in hookwalls(text) and "~/.mitmproxy" not in json.dumps(line)
