"""The loop guard's view of hookwall's own listeners: exact binds and wildcard binds."""

from __future__ import annotations

import ipaddress

import pytest

from hookwall.destinations.selfaddr import SelfAddresses, local_interface_addresses


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", ""])
def test_a_wildcard_bind_covers_loopback_and_every_local_address_for_its_port(
    wildcard: str,
) -> None:
    own = SelfAddresses()
    own.add_listener(wildcard, 9090)
    for address in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]:
        assert (ip(address), 9090) in own
    for local in local_interface_addresses():
        assert (local, 9090) in own
    assert (ip("127.0.0.1"), 9091) not in own


def test_exact_binds_cover_that_address_and_port_only() -> None:
    own = SelfAddresses()
    own.add_listener("127.0.0.1", 8080)  # a public listener
    own.add_listener("127.0.0.3", 9090)  # the admin listener
    assert (ip("127.0.0.1"), 8080) in own and (ip("127.0.0.3"), 9090) in own
    assert (ip("::ffff:127.0.0.3"), 9090) in own
    assert (ip("127.0.0.1"), 9090) not in own and (ip("127.0.0.2"), 8080) not in own
