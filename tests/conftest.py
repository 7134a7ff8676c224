"""Shared fixtures: a test DNS server, local receivers (plain and TLS), and the real proxy.

The whole test session runs in a network namespace of its own that has only ``lo`` (created
here, before any thread or socket exists, when we may), so no test can send a packet to
anything but loopback, even when the code under test is wrong. Tests that aim the proxy at
non-loopback addresses (169.254.169.254, 10.0.0.1, ...) require that isolation and are skipped
without it.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.dnsserver import TestDnsServer
from tests.support.receivers import Receiver, start_receiver, start_twin_receivers

TEST_IPV6 = "fd00:1::2"


def _isolate_network() -> bool:
    """Move this process (and every child it starts) into a new netns with only ``lo`` up."""
    if os.environ.get("HOOKWALL_TEST_NETNS", "1") == "0":
        return False
    unshare = getattr(os, "unshare", None)
    if unshare is None or os.geteuid() != 0:
        return False
    try:
        unshare(os.CLONE_NEWNET)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        # A routable-looking IPv6 address on lo, for receivers a policy may allow (::1 never can:
        # the built-in ::1/128 row is as long as any allow exception, and ties deny).
        subprocess.run(
            ["ip", "-6", "addr", "add", f"{TEST_IPV6}/128", "dev", "lo", "nodad"],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return False
    return [name for _, name in socket.if_nameindex()] == ["lo"]


NETWORK_ISOLATED = _isolate_network()

needs_isolation = pytest.mark.skipif(
    not NETWORK_ISOLATED,
    reason="aims at non-loopback addresses; runs only inside the test network namespace "
    "(root with os.unshare, Python >= 3.12)",
)


@pytest.fixture(scope="session")
def receiver_ca() -> trustme.CA:
    """The CA of our local TLS receivers (the proxy trusts it via the policy's ca_bundle)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def receiver_ca_file(receiver_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("receiver-ca") / "ca.pem"
    receiver_ca.cert_pem.write_to_path(str(path))
    return path


def tls_server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def dns_server() -> Iterator[TestDnsServer]:
    server = TestDnsServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_twins() -> Iterator[tuple[Receiver, Receiver]]:
    """(allowed at 127.0.0.2, forbidden at 127.0.0.1), same port."""
    allowed, forbidden = start_twin_receivers("127.0.0.2", "127.0.0.1")
    yield allowed, forbidden
    allowed.stop()
    forbidden.stop()


@pytest.fixture(scope="module")
def tls_twins(receiver_ca: trustme.CA) -> Iterator[tuple[Receiver, Receiver]]:
    context = tls_server_context(receiver_ca, "hooks.test", "*.hooks.test", "127.0.0.2")
    allowed, forbidden = start_twin_receivers("127.0.0.2", "127.0.0.1", context)
    yield allowed, forbidden
    allowed.stop()
    forbidden.stop()


@pytest.fixture(scope="module")
def ipv6_receiver() -> Iterator[Receiver]:
    if not NETWORK_ISOLATED:
        pytest.skip("needs the test network namespace (an IPv6 address on lo)")
    receiver = start_receiver(TEST_IPV6)
    yield receiver
    receiver.stop()
