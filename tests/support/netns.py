"""The test session's own network namespace, with only ``lo`` up.

Importing this module (``tests/conftest.py`` does, before any thread or socket exists, when
``unshare`` still may) moves the test process and every child it starts into a new network
namespace, so no test can send a packet to anything but loopback, even when the code under
test is wrong. Tests that aim the proxy at non-loopback addresses (169.254.169.254, 10.0.0.1,
...) require that isolation and are skipped without it. ``HOOKWALL_TEST_NETNS=0`` opts out.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

# A routable-looking IPv6 address on lo, for receivers a policy may allow (::1 never can: the
# built-in ::1/128 row is as long as any allow exception, and ties deny).
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
