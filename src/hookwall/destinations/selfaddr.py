"""The proxy's own listening addresses, so no request can loop back through hookwall."""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

from hookwall.destinations.addresses import IPAddress

_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")


def local_interface_addresses() -> set[IPAddress]:
    """Addresses of this host's interfaces (Linux /proc; best effort elsewhere)."""
    found: set[IPAddress] = {ipaddress.ip_address("::1")}
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for previous, line in itertools.pairwise(lines):
            if "/32 host LOCAL" in line and "|--" in previous:
                found.add(ipaddress.ip_address(previous.split("|--")[1].strip()))
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.add(ipaddress.IPv6Address(int(raw, 16)))
    except (OSError, ValueError, IndexError):
        pass
    return found


class SelfAddresses:
    """``(ip, port) in self_addresses`` is True for any address that reaches our listener."""

    def __init__(self) -> None:
        self._exact: set[tuple[IPAddress, int]] = set()
        self._wildcard_ports: set[int] = set()
        self._local: set[IPAddress] = set()

    def add_listener(self, host: str, port: int) -> None:
        address = ipaddress.ip_address(host or "0.0.0.0")  # noqa: S104 - parsing, not binding
        if address.is_unspecified:
            self._wildcard_ports.add(port)
            self._local = local_interface_addresses()
        else:
            self._exact.add((address, port))

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        address, port = item
        # An IPv4-mapped address (::ffff:127.0.0.2) reaches the IPv4 listener on a dual-stack
        # socket, so it is judged as the IPv4 address it maps.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if (address, port) in self._exact:
            return True
        if port in self._wildcard_ports:
            return bool(address in self._local or address in _LOOPBACK_V4)
        return False
