"""IP address classification against explicit allow/deny prefix tables.

The built-in deny table is written out row by row instead of asking ipaddress whether an
address is global or private: those answers change between Python releases, and an SSRF guard
must not change its mind because the interpreter was upgraded. Every row names the RFC that
defines it, so a denial in the log says exactly why.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# How an address inside an embedding prefix is judged.
Embedding = Literal["mapped", "translated", "nat64", "6to4"]


@dataclass(frozen=True, slots=True)
class Prefix:
    """One row of an allow or deny table.

    ``label`` is what logs and `explain` show ("loopback (RFC 1122)", "policy allow 10.1.0.0/16").
    ``embedded`` marks IPv6 prefixes that carry an IPv4 address: an address inside such a prefix
    is judged by the IPv4 address it embeds instead of by the prefix itself.
    """

    network: IPNetwork
    label: str
    embedded: Embedding | None = None


@dataclass(frozen=True, slots=True)
class AddressVerdict:
    address: IPAddress
    allowed: bool
    # The prefix that decided, or None when nothing matched (allowed by default).
    matched: Prefix | None
    # For embedded addresses: the verdict on the IPv4 address inside.
    inner: AddressVerdict | None = None
    # For an allow exception: the deny row it beat (what it reopens for this address).
    overridden: Prefix | None = None

    def explain(self) -> str:
        """One human sentence: '10.0.0.1 is in 10.0.0.0/8 private-use (RFC 1918): denied'."""
        outcome = "allowed" if self.allowed else "denied"
        if self.matched is None:
            return f"{self.address} matches no deny prefix: {outcome}"
        if self.inner is not None:
            return (
                f"{self.address} embeds {self.inner.address} ({_aside(self.matched.label)}); "
                f"{self.inner.explain()}"
            )
        if self.overridden is not None:
            return (
                f"{self.address} is in {_describe(self.matched)}, which reopens "
                f"{_describe(self.overridden)}: {outcome}"
            )
        return f"{self.address} is in {_describe(self.matched)}: {outcome}"


def _describe(prefix: Prefix) -> str:
    """'127.0.0.0/8 loopback (RFC 1122)'; policy labels that already name the network stay as is."""
    network = str(prefix.network)
    return prefix.label if network in prefix.label else f"{network} {prefix.label}"


def _aside(label: str) -> str:
    """Turn 'IPv4-mapped (RFC 4291)' into 'IPv4-mapped, RFC 4291' so it reads inside parentheses."""
    name, sep, rest = label.rpartition(" (")
    if sep and name and rest.endswith(")"):
        return f"{name}, {rest[:-1]}"
    return label


# The built-in deny table. Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries
# (every row whose "Globally Reachable" is False or N/A), plus multicast, reserved space and the
# IPv4-embedding IPv6 prefixes. Rows may nest (e.g. 255.255.255.255/32 in 240.0.0.0/4): the
# longest match decides, so the more specific row is the one a log line names.
#
# Registry rows deliberately NOT listed because they are globally reachable anycast/unicast
# services: 192.31.196.0/24 (AS112-v4), 192.52.193.0/24 (AMT), 192.175.48.0/24 (AS112 direct
# delegation), 2620:4f:8000::/48 (AS112-v6). 192.0.0.9/32 (PCP anycast) and 192.0.0.10/32 (TURN
# anycast) are global but sit inside 192.0.0.0/24, which is denied whole; likewise the global
# rows inside 2001::/23 (2001:1::1-3, 2001:3::/32 AMT, 2001:4:112::/48, 2001:20::/28 ORCHIDv2,
# 2001:30::/28 DRIP) are denied with their block: a webhook has no business reaching them.
SPECIAL_PURPOSE: tuple[Prefix, ...] = (
    # --- IPv4 -----------------------------------------------------------------------------
    Prefix(ip_network("0.0.0.0/8"), "this network (RFC 791)"),
    Prefix(ip_network("0.0.0.0/32"), "this host on this network (RFC 1122)"),
    Prefix(ip_network("10.0.0.0/8"), "private-use (RFC 1918)"),
    Prefix(ip_network("100.64.0.0/10"), "shared address space, CGNAT (RFC 6598)"),
    Prefix(ip_network("127.0.0.0/8"), "loopback (RFC 1122)"),
    Prefix(ip_network("169.254.0.0/16"), "link-local (RFC 3927)"),
    Prefix(ip_network("172.16.0.0/12"), "private-use (RFC 1918)"),
    # The whole /24 is "IETF protocol assignments"; its own registry rows follow.
    Prefix(ip_network("192.0.0.0/24"), "IETF protocol assignments (RFC 6890)"),
    Prefix(ip_network("192.0.0.0/29"), "IPv4 service continuity prefix (RFC 7335)"),
    Prefix(ip_network("192.0.0.8/32"), "IPv4 dummy address (RFC 7600)"),
    Prefix(ip_network("192.0.0.170/32"), "NAT64/DNS64 discovery (RFC 8880)"),
    Prefix(ip_network("192.0.0.171/32"), "NAT64/DNS64 discovery (RFC 8880)"),
    Prefix(ip_network("192.0.2.0/24"), "documentation TEST-NET-1 (RFC 5737)"),
    Prefix(ip_network("192.88.99.0/24"), "deprecated 6to4 relay anycast (RFC 7526)"),
    Prefix(ip_network("192.168.0.0/16"), "private-use (RFC 1918)"),
    Prefix(ip_network("198.18.0.0/15"), "benchmarking (RFC 2544)"),
    Prefix(ip_network("198.51.100.0/24"), "documentation TEST-NET-2 (RFC 5737)"),
    Prefix(ip_network("203.0.113.0/24"), "documentation TEST-NET-3 (RFC 5737)"),
    Prefix(ip_network("224.0.0.0/4"), "multicast (RFC 5771)"),
    Prefix(ip_network("240.0.0.0/4"), "reserved (RFC 1112)"),
    Prefix(ip_network("255.255.255.255/32"), "limited broadcast (RFC 919)"),
    # --- IPv6 -----------------------------------------------------------------------------
    # ::/96 is denied whole; ::/128 and ::1/128 inside it are more specific and name themselves.
    Prefix(ip_network("::/96"), "IPv4-compatible, deprecated (RFC 4291)"),
    Prefix(ip_network("::/128"), "unspecified (RFC 4291)"),
    Prefix(ip_network("::1/128"), "loopback (RFC 4291)"),
    # Embedding prefixes: judged by the IPv4 address inside (see check_address).
    Prefix(ip_network("::ffff:0:0/96"), "IPv4-mapped (RFC 4291)", "mapped"),
    Prefix(ip_network("::ffff:0:0:0/96"), "IPv4-translated (RFC 2765, RFC 6145)", "translated"),
    Prefix(ip_network("64:ff9b::/96"), "NAT64 well-known prefix (RFC 6052)", "nat64"),
    # Local-use NAT64 may use any translation scheme, so we cannot extract the IPv4: deny whole.
    Prefix(ip_network("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215)"),
    Prefix(ip_network("100::/64"), "discard-only (RFC 6666)"),
    Prefix(ip_network("100:0:0:1::/64"), "dummy prefix (RFC 9780)"),
    # 2001::/23 is a block of IETF protocol assignments that is NOT globally reachable as a
    # whole (the registry says N/A); the few global services inside it are denied with it.
    Prefix(ip_network("2001::/23"), "IETF protocol assignments (RFC 2928)"),
    # Teredo embeds an obfuscated client IPv4 and a server IPv4: deny whole, do not decode.
    Prefix(ip_network("2001::/32"), "Teredo (RFC 4380)"),
    Prefix(ip_network("2001:2::/48"), "benchmarking (RFC 5180)"),
    Prefix(ip_network("2001:10::/28"), "deprecated ORCHID (RFC 4843)"),
    Prefix(ip_network("2001:db8::/32"), "documentation (RFC 3849)"),
    Prefix(ip_network("2002::/16"), "6to4 (RFC 3056)", "6to4"),
    Prefix(ip_network("3fff::/20"), "documentation (RFC 9637)"),
    Prefix(ip_network("5f00::/16"), "SRv6 SIDs (RFC 9602)"),
    Prefix(ip_network("fc00::/7"), "unique-local (RFC 4193)"),
    Prefix(ip_network("fe80::/10"), "link-local (RFC 4291)"),
    Prefix(ip_network("fec0::/10"), "deprecated site-local (RFC 3879)"),
    Prefix(ip_network("ff00::/8"), "multicast (RFC 4291)"),
)

_NAMED: dict[str, tuple[Prefix, ...]] = {"special-purpose": SPECIAL_PURPOSE}


def named_set(name: str) -> tuple[Prefix, ...]:
    """Expand a built-in named set ('special-purpose'); KeyError for unknown names."""
    try:
        return _NAMED[name]
    except KeyError:
        known = ", ".join(repr(n) for n in NAMED_SETS)
        raise KeyError(f"unknown address set {name!r}; known sets: {known}") from None


NAMED_SETS: tuple[str, ...] = ("special-purpose",)

_EXAMPLE = "such as 10.0.0.0/8, 192.0.2.1 or 2001:db8::/32"


def parse_prefix(text: str, label: str | None = None) -> Prefix:
    """Parse a CIDR or bare address from a policy ('10.1.0.0/16', '2001:db8::1'); ValueError if bad.

    Strict on purpose: a prefix with host bits set usually means the operator meant something
    else, and silently widening or narrowing it would change what the proxy lets through.
    """
    if not isinstance(text, str):
        raise ValueError(f"An IP prefix must be text {_EXAMPLE}, not {type(text).__name__}.")
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"The prefix is empty; write an IP address or CIDR prefix {_EXAMPLE}.")
    address_text, slash, length_text = stripped.partition("/")
    if "%" in address_text:
        raise ValueError(
            f"{stripped!r} has an IPv6 zone id (%...); zone ids have no meaning in a policy, "
            "remove it."
        )
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise ValueError(
            f"{stripped!r} is not an IP address or CIDR prefix; write one {_EXAMPLE}."
        ) from None
    max_length = address.max_prefixlen
    if slash:
        if not (length_text.isascii() and length_text.isdigit() and len(length_text) <= 3):
            raise ValueError(
                f"{stripped!r} has prefix length {length_text!r}; write the number of network "
                f"bits (0 to {max_length}), e.g. /16."
            )
        length = int(length_text)
        if length > max_length:
            raise ValueError(
                f"{stripped!r} has prefix length /{length}, but IPv{address.version} prefixes "
                f"are at most /{max_length}."
            )
    else:
        length = max_length
    network = ip_network((address, length), strict=False)
    if network.network_address != address:
        raise ValueError(
            f"{stripped!r} has host bits set; use the network address {network} instead "
            f"(or {address}/{max_length} for that single address)."
        )
    return Prefix(network, label if label is not None else f"policy {network}")


def _longest(address: IPAddress, table: tuple[Prefix, ...], floor: int) -> Prefix | None:
    """The longest row of ``table`` containing ``address`` with prefix length >= ``floor``.

    ``network.__contains__`` already returns False across IP versions, so an IPv4 address can
    never match an IPv6 row (and vice versa).
    """
    best: Prefix | None = None
    for row in table:
        network = row.network
        length = network.prefixlen
        if length >= floor and address in network:
            best = row
            floor = length + 1
    return best


# The embedding prefixes whose IPv4 address hookwall decodes. An IPv6 address inside one is
# judged as that IPv4 address and nothing else, whatever the tables say about the IPv6 prefix,
# so a policy can neither open nor close it by IPv6 spelling. The other IPv4-carrying prefixes
# (IPv4-compatible ::/96, local-use NAT64 64:ff9b:1::/48, Teredo 2001::/32) cannot be decoded
# reliably and stay plain rows of the deny table, denied whole.
EMBEDDINGS: tuple[Prefix, ...] = tuple(row for row in SPECIAL_PURPOSE if row.embedded is not None)


def _embedded_ipv4(address: ipaddress.IPv6Address, kind: Embedding) -> ipaddress.IPv4Address:
    """The IPv4 address carried inside ``address`` for one embedding scheme."""
    value = int(address)
    if kind == "6to4":  # 2002:AABB:CCDD::/48 carries AA.BB.CC.DD in bits 16..48
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    # mapped, translated and the NAT64 /96 carry it in the last 32 bits
    return ipaddress.IPv4Address(value & 0xFFFFFFFF)


def embedding_of(address: IPAddress) -> Prefix | None:
    """The embedding prefix (row of EMBEDDINGS) an IPv6 address lies in, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        for row in EMBEDDINGS:
            if address in row.network:
                return row
    return None


def _embedded_network(network: ipaddress.IPv6Network, row: Prefix) -> ipaddress.IPv4Network:
    """The IPv4 range an IPv6 prefix inside embedding ``row`` stands for; ValueError if none."""
    value = int(network.network_address)
    if row.embedded == "6to4":  # the IPv4 address sits in bits 16..48
        if network.prefixlen > 48:
            v4 = ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
            raise ValueError(
                f"{network} is inside {row.network} {row.label}, whose addresses hookwall "
                f"judges by the IPv4 address in bits 16-48 ({v4}); a prefix longer than /48 "
                f"cannot be judged that way: write {v4}/32 instead"
            )
        return ipaddress.IPv4Network(((value >> 80) & 0xFFFFFFFF, network.prefixlen - 16))
    return ipaddress.IPv4Network((value & 0xFFFFFFFF, network.prefixlen - 96))


def canonical_prefix(prefix: Prefix) -> Prefix:
    """A policy row as hookwall judges it: an IPv6 row inside an embedding prefix becomes the
    IPv4 range it embeds ('::ffff:127.0.0.0/104' -> 127.0.0.0/8); ValueError if it has none.

    Runtime judges such addresses by their IPv4 address only (``check_address``), so a row
    kept in IPv6 form would be dead, or, before this rule, an allow that silently reopened
    the IPv4 space it spells.
    """
    network = prefix.network
    if not isinstance(network, ipaddress.IPv6Network):
        return prefix
    for row in EMBEDDINGS:
        if network.subnet_of(row.network):  # type: ignore[arg-type]
            v4 = _embedded_network(network, row)
            return Prefix(v4, f"{prefix.label} = {v4}, {_aside(row.label)}")
    return prefix


def check_address(
    address: IPAddress, deny: tuple[Prefix, ...], allow: tuple[Prefix, ...]
) -> AddressVerdict:
    """Judge one address: the longest matching prefix among allow and deny wins, ties deny.

    An IPv6 address inside an embedding prefix (mapped, translated, NAT64, 6to4) is judged as
    the IPv4 address it embeds against the same tables, and only as that: '::ffff:10.0.0.1'
    cannot sneak past a 10/8 deny, an allow exception for 10.1.0.0/16 also covers its mapped
    spelling, and no IPv6 row can open or close an embedded address on its own.
    """
    embedding = embedding_of(address)
    if embedding is not None and isinstance(address, ipaddress.IPv6Address):
        assert embedding.embedded is not None
        inner = check_address(_embedded_ipv4(address, embedding.embedded), deny, allow)
        return AddressVerdict(address, inner.allowed, embedding, inner)
    denied_by = _longest(address, deny, 0)
    # Allow must be strictly longer than the best deny: equal length means deny wins.
    floor = denied_by.network.prefixlen + 1 if denied_by is not None else 0
    allowed_by = _longest(address, allow, floor)
    decider = allowed_by if allowed_by is not None else denied_by
    if decider is None:
        return AddressVerdict(address, True, None)
    overridden = denied_by if allowed_by is not None else None
    return AddressVerdict(address, allowed_by is not None, decider, overridden=overridden)
