"""Tests for the special-purpose deny table and the longest-prefix allow/deny check."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest

from hookwall.destinations.addresses import (
    NAMED_SETS,
    SPECIAL_PURPOSE,
    AddressVerdict,
    IPAddress,
    Prefix,
    canonical_prefix,
    check_address,
    named_set,
    parse_prefix,
)

SPECIAL = named_set("special-purpose")
NONE: tuple[Prefix, ...] = ()
EMBEDDED_ROWS = [row for row in SPECIAL if row.embedded is not None]
PLAIN_ROWS = [row for row in SPECIAL if row.embedded is None]


def judge(
    text: str, deny: tuple[Prefix, ...] = SPECIAL, allow: tuple[Prefix, ...] = NONE
) -> AddressVerdict:
    return check_address(ip_address(text), deny, allow)


def embed(row: Prefix, v4: str, fill_high: bool = False) -> IPv6Address:
    """Put ``v4`` where ``row`` carries its IPv4; optionally set every other host bit."""
    network = row.network
    value = int(IPv4Address(v4))
    shift = 80 if row.embedded == "6to4" else 0
    other = (1 << (128 - network.prefixlen)) - 1 if fill_high else 0
    other &= ~(0xFFFFFFFF << shift)
    return IPv6Address(int(network.network_address) | other | (value << shift))


def outside(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[IPAddress]:
    """The first address below and above ``network``, where they exist."""
    cls = IPv4Address if network.version == 4 else IPv6Address
    top = (1 << network.max_prefixlen) - 1
    low, high = int(network.network_address), int(network.broadcast_address)
    return [cls(v) for v in (low - 1, high + 1) if 0 <= v <= top]


def within(
    inner: ipaddress.IPv4Network | ipaddress.IPv6Network,
    outer: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> bool:
    """``inner.subnet_of(outer)``, for networks of either family (False across families)."""
    return inner.network_address in outer and inner.broadcast_address in outer


def teredo(client: str, server: str = "65.54.227.120") -> str:
    """Teredo address (RFC 4380): server IPv4, flags, obfuscated port and client IPv4."""
    value = (0x20010000 << 96) | (int(IPv4Address(server)) << 64) | (0x8000 << 48)
    value |= (0xFFFF ^ 40000) << 32 | (0xFFFFFFFF ^ int(IPv4Address(client)))
    return str(IPv6Address(value))


# --- the table itself --------------------------------------------------------------------


def test_named_set_is_the_table() -> None:
    assert NAMED_SETS == ("special-purpose",)
    assert named_set("special-purpose") is SPECIAL_PURPOSE
    assert isinstance(SPECIAL, tuple)
    assert all(isinstance(row, Prefix) for row in SPECIAL)


def test_unknown_named_set_is_key_error() -> None:
    with pytest.raises(KeyError, match="special-purpose"):
        named_set("private")


def test_rows_are_unique_and_labelled_with_an_rfc() -> None:
    networks = [row.network for row in SPECIAL]
    assert len(networks) == len(set(networks))
    for row in SPECIAL:
        assert "(RFC " in row.label, row


def test_embedding_rows_are_exactly_the_four() -> None:
    assert {(r.network, r.embedded) for r in EMBEDDED_ROWS} == {
        (ip_network("::ffff:0:0/96"), "mapped"),
        (ip_network("::ffff:0:0:0/96"), "translated"),
        (ip_network("64:ff9b::/96"), "nat64"),
        (ip_network("2002::/16"), "6to4"),
    }


# Every range the brief and the IANA registries require, written independently of the table.
REQUIRED = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.170/31",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "::/96", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64",
    "2001::/23", "2001::/32", "2001:2::/48", "2001:10::/28", "2001:db8::/32", "3fff::/20",
    "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
]  # fmt: skip


@pytest.mark.parametrize("cidr", REQUIRED)
def test_required_range_is_denied_at_both_edges(cidr: str) -> None:
    network = ip_network(cidr)
    for address in (network.network_address, network.broadcast_address):
        verdict = check_address(address, SPECIAL, NONE)
        assert not verdict.allowed, verdict.explain()
        assert verdict.matched is not None and within(verdict.matched.network, network)


# --- every row: edges inside, neighbours outside -----------------------------------------


@pytest.mark.parametrize("row", PLAIN_ROWS, ids=lambda r: str(r.network))
def test_plain_row_edges_are_denied(row: Prefix) -> None:
    for address in (row.network.network_address, row.network.broadcast_address):
        verdict = check_address(address, SPECIAL, NONE)
        assert not verdict.allowed, verdict.explain()
        assert verdict.inner is None
        # The row decides, unless a more specific row nested inside it does.
        assert verdict.matched is not None
        assert within(verdict.matched.network, row.network)


@pytest.mark.parametrize("row", EMBEDDED_ROWS, ids=lambda r: str(r.network))
def test_embedded_row_edges_are_judged_by_the_ipv4_inside(row: Prefix) -> None:
    # The literal edges embed 0.0.0.0 and 255.255.255.255, both denied.
    for address in (row.network.network_address, row.network.broadcast_address):
        verdict = check_address(address, SPECIAL, NONE)
        assert not verdict.allowed and verdict.matched == row and verdict.inner is not None
    for fill_high in (False, True):
        private = check_address(embed(row, "10.0.0.1", fill_high), SPECIAL, NONE)
        assert not private.allowed and private.matched == row
        assert private.inner is not None and private.inner.address == IPv4Address("10.0.0.1")
        assert private.inner.matched is not None
        assert str(private.inner.matched.network) == "10.0.0.0/8"
        public = check_address(embed(row, "8.8.8.8", fill_high), SPECIAL, NONE)
        assert public.allowed and public.matched == row
        assert public.inner == AddressVerdict(IPv4Address("8.8.8.8"), True, None)


@pytest.mark.parametrize("row", SPECIAL, ids=lambda r: str(r.network))
def test_first_address_outside_a_row_is_not_decided_by_it(row: Prefix) -> None:
    for address in outside(row.network):
        verdict = check_address(address, SPECIAL, NONE)
        assert verdict.matched is None or verdict.matched.network != row.network, address


# --- public and embedded addresses -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "8.8.8.8", "1.1.1.1", "93.184.216.34", "9.255.255.255", "11.0.0.0", "100.63.255.255",
        "100.128.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.0", "192.167.255.255",
        "198.17.255.255", "198.20.0.0", "223.255.255.255",
        "2606:4700:4700::1111", "2a00:1450::1", "2001:4860:4860::8888", "2001:200::1",
        "2400:cb00::1", "2003::1", "fbff:ffff::1",
    ],
)  # fmt: skip
def test_public_addresses_are_allowed(text: str) -> None:
    verdict = judge(text)
    assert verdict.allowed and verdict.matched is None and verdict.inner is None


def _spellings(v4: str) -> list[tuple[str, str | None]]:
    """(IPv6 spelling of ``v4``, expected embedding kind or None for rows denied whole)."""
    a, b, c, d = (int(x) for x in v4.split("."))
    return [
        (f"::ffff:{v4}", "mapped"),
        (f"::ffff:0:{v4}", "translated"),
        (f"64:ff9b::{v4}", "nat64"),
        (f"2002:{a:02x}{b:02x}:{c:02x}{d:02x}::", "6to4"),
        (f"2002:{a:02x}{b:02x}:{c:02x}{d:02x}:1::1", "6to4"),
        (f"::{v4}", None),  # IPv4-compatible
        (teredo(v4), None),
        (f"64:ff9b:1::{v4}", None),
        (f"64:ff9b:1:{a:02x}{b:02x}:{c:02x}{d:02x}::", None),
    ]


@pytest.mark.parametrize(
    ("text", "kind"),
    [s for v4 in ("127.0.0.1", "10.0.0.1", "169.254.169.254") for s in _spellings(v4)],
)
def test_every_embedding_of_an_internal_ipv4_is_denied(text: str, kind: str | None) -> None:
    verdict = judge(text)
    assert not verdict.allowed, verdict.explain()
    assert verdict.matched is not None and verdict.matched.embedded == kind
    if kind is None:
        assert verdict.inner is None
    else:
        assert verdict.inner is not None and not verdict.inner.allowed


def test_teredo_is_denied_even_with_public_ipv4s() -> None:
    verdict = judge(teredo("8.8.8.8", "1.1.1.1"))
    assert not verdict.allowed and verdict.matched is not None
    assert verdict.matched.label == "Teredo (RFC 4380)"


def test_6to4_extracts_bits_16_to_48() -> None:
    verdict = judge("2002:c000:0201:abcd:ffff::1")
    assert verdict.inner is not None and verdict.inner.address == IPv4Address("192.0.2.1")
    assert not verdict.allowed


# --- allow/deny longest-prefix semantics -------------------------------------------------

ALLOW_10_1 = (parse_prefix("10.1.0.0/16", "policy allow 10.1.0.0/16"),)


@pytest.mark.parametrize(
    ("text", "allowed"),
    [("10.1.2.3", True), ("10.1.0.0", True), ("10.1.255.255", True), ("10.2.0.1", False),
     ("10.0.255.255", False), ("127.0.0.1", False)],
)  # fmt: skip
def test_allow_exception_inside_deny(text: str, allowed: bool) -> None:
    verdict = judge(text, SPECIAL, ALLOW_10_1)
    assert verdict.allowed is allowed
    assert verdict.matched is not None
    assert (verdict.matched in ALLOW_10_1) is allowed


def test_deny_host_inside_allow_range_is_denied() -> None:
    deny = (*SPECIAL, parse_prefix("10.1.2.3", "policy deny 10.1.2.3/32"))
    assert not judge("10.1.2.3", deny, ALLOW_10_1).allowed
    assert judge("10.1.2.4", deny, ALLOW_10_1).allowed


def test_same_length_allow_and_deny_deny_wins() -> None:
    deny = (parse_prefix("10.1.0.0/16", "policy deny 10.1.0.0/16"),)
    verdict = judge("10.1.2.3", deny, ALLOW_10_1)
    assert not verdict.allowed and verdict.matched == deny[0]
    assert not judge("10.1.2.3", (*SPECIAL, *deny), ALLOW_10_1).allowed


def test_allow_single_loopback_address() -> None:
    allow = (parse_prefix("127.0.0.2"),)
    assert judge("127.0.0.2", SPECIAL, allow).allowed
    assert not judge("127.0.0.1", SPECIAL, allow).allowed
    assert not judge("127.0.0.3", SPECIAL, allow).allowed


def test_allow_shorter_than_deny_does_not_override() -> None:
    allow = (parse_prefix("0.0.0.0/0"), parse_prefix("::/0"))
    assert not judge("127.0.0.1", SPECIAL, allow).allowed
    assert not judge("::1", SPECIAL, allow).allowed
    assert judge("8.8.8.8", SPECIAL, allow).matched == allow[0]


@pytest.mark.parametrize(
    "text", ["::ffff:10.1.2.3", "::ffff:0:10.1.2.3", "64:ff9b::10.1.2.3", "2002:0a01:0203::1"]
)
def test_allow_exception_applies_to_embedded_addresses(text: str) -> None:
    verdict = judge(text, SPECIAL, ALLOW_10_1)
    assert verdict.allowed
    assert verdict.matched is not None and verdict.matched.embedded is not None
    assert verdict.inner is not None and verdict.inner.matched == ALLOW_10_1[0]
    assert not judge(
        text.replace("10.1.2.3", "10.2.2.3").replace("0a01", "0a02"), SPECIAL, ALLOW_10_1
    ).allowed


def test_ipv6_rows_never_decide_an_embedded_address() -> None:
    # Runtime judges an embedded address as its IPv4 only: an IPv6 row inside an embedding
    # prefix, left uncanonicalised, neither opens nor closes it.
    allow = (parse_prefix("::ffff:10.1.0.0/112"), parse_prefix("::ffff:0:0/97"))
    verdict = judge("::ffff:10.1.2.3", SPECIAL, allow)
    assert not verdict.allowed and verdict.inner is not None
    deny = (parse_prefix("::ffff:8.8.8.8/128"),)
    assert judge("::ffff:8.8.8.8", deny, NONE).allowed


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("::ffff:10.1.0.0/112", "10.1.0.0/16"),
        ("::ffff:0:0/97", "0.0.0.0/1"),
        ("::ffff:127.0.0.0/104", "127.0.0.0/8"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::ffff:0:10.0.0.0/104", "10.0.0.0/8"),
        ("64:ff9b::7f00:0/104", "127.0.0.0/8"),
        ("2002:7f00::/24", "127.0.0.0/8"),
        ("2002:a01:203::/48", "10.1.2.3/32"),
        ("2002::/16", "0.0.0.0/0"),
    ],
)
def test_canonical_prefix_judges_embedded_rows_as_ipv4(text: str, network: str) -> None:
    row = canonical_prefix(parse_prefix(text))
    assert row.network == ip_network(network)
    assert row.label.startswith(f"policy {parse_prefix(text).network} = {network}, ")


@pytest.mark.parametrize(
    "text", ["2001:db8::/32", "::/96", "::1/128", "64:ff9b:1::/48", "2001::/32", "::/0", "::/64"]
)
def test_canonical_prefix_keeps_rows_outside_or_around_embeddings(text: str) -> None:
    # Teredo, local-use NAT64 and IPv4-compatible are not decoded (denied whole), and a row
    # containing an embedding prefix is about IPv6 space, not "all of IPv4".
    row = parse_prefix(text)
    assert canonical_prefix(row) == row


def test_canonical_prefix_refuses_6to4_rows_longer_than_the_ipv4() -> None:
    with pytest.raises(ValueError, match=r"write 10\.1\.2\.3/32 instead"):
        canonical_prefix(parse_prefix("2002:a01:203:1::/64"))


def test_canonicalised_deny_covers_both_spellings() -> None:
    deny = (canonical_prefix(parse_prefix("::ffff:8.8.8.0/120")),)
    assert not judge("8.8.8.8", deny, NONE).allowed
    assert not judge("::ffff:8.8.8.8", deny, NONE).allowed
    assert judge("8.8.4.4", deny, NONE).allowed


def test_canonicalised_allow_covers_both_spellings() -> None:
    allow = (canonical_prefix(parse_prefix("::ffff:10.1.0.0/112")),)
    assert judge("10.1.2.3", SPECIAL, allow).allowed
    assert judge("::ffff:10.1.2.3", SPECIAL, allow).allowed
    assert judge("2002:a01:203::1", SPECIAL, allow).allowed
    assert not judge("::ffff:10.2.0.1", SPECIAL, allow).allowed


def test_ipv4_never_matches_ipv6_prefixes() -> None:
    v6_everything = (Prefix(ip_network("::/0"), "all IPv6"),)
    assert judge("127.0.0.1", v6_everything).matched is None
    assert judge("127.0.0.1", NONE, v6_everything).matched is None
    # ::ffff:0:0/96 holds every IPv4 value as integer, yet never matches an IPv4Address.
    for address in ("0.0.0.0", "10.0.0.1", "255.255.255.255"):
        for row in SPECIAL:
            if row.network.version == 6:
                assert ip_address(address) not in row.network
    v4_everything = (Prefix(ip_network("0.0.0.0/0"), "all IPv4"),)
    assert judge("::1", v4_everything).matched is None


def test_no_match_is_allowed() -> None:
    assert judge("10.0.0.1", NONE, NONE) == AddressVerdict(IPv4Address("10.0.0.1"), True, None)


# --- parse_prefix ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("10.1.0.0/16", "10.1.0.0/16"),
        ("  10.1.0.0/16\n", "10.1.0.0/16"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("192.0.2.1", "192.0.2.1/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("10.0.0.0/08", "10.0.0.0/8"),
        ("::ffff:10.0.0.0/104", "::ffff:a00:0/104"),
    ],
)
def test_parse_prefix_accepts(text: str, network: str) -> None:
    prefix = parse_prefix(text)
    assert prefix.network == ip_network(network)
    assert prefix.label == f"policy {prefix.network}"
    assert prefix.embedded is None


def test_parse_prefix_keeps_mapped_cidr_as_ipv6() -> None:
    assert parse_prefix("::ffff:10.0.0.0/104").network.version == 6


def test_parse_prefix_custom_label() -> None:
    assert parse_prefix("10.0.0.0/8", "office").label == "office"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.1.0.1/16", "use the network address 10.1.0.0/16"),
        ("2001:db8::1/32", "use the network address 2001:db8::/32"),
        ("", "empty"),
        ("   ", "empty"),
        ("foo", "not an IP address"),
        ("10.0.0", "not an IP address"),
        ("010.0.0.0/8", "not an IP address"),
        ("10.0.0.0/33", "at most /32"),
        ("::/129", "at most /128"),
        ("10.0.0.0/", "prefix length"),
        ("10.0.0.0/-1", "prefix length"),
        ("10.0.0.0/255.255.0.0", "prefix length"),
        ("10.0.0.0/8/8", "prefix length"),
        ("10.0.0.0/0008", "prefix length"),
        ("fe80::1%eth0", "zone id"),
    ],
)
def test_parse_prefix_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_prefix(text)
    assert str(info.value)[0].isupper() or str(info.value)[0] == "'"
    assert str(info.value).endswith(".")


# --- explain -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "allow", "sentence"),
    [
        ("127.0.0.1", NONE, "127.0.0.1 is in 127.0.0.0/8 loopback (RFC 1122): denied"),
        (
            "::ffff:10.0.0.1",
            NONE,
            f"{IPv6Address('::ffff:10.0.0.1')} embeds 10.0.0.1 (IPv4-mapped, RFC 4291); "
            "10.0.0.1 is in 10.0.0.0/8 private-use (RFC 1918): denied",
        ),
        ("93.184.216.34", NONE, "93.184.216.34 matches no deny prefix: allowed"),
        (
            "10.1.2.3",
            ALLOW_10_1,
            "10.1.2.3 is in policy allow 10.1.0.0/16, which reopens 10.0.0.0/8 private-use "
            "(RFC 1918): allowed",
        ),
        (
            "10.1.2.3",
            (parse_prefix("10.1.0.0/16"),),
            "10.1.2.3 is in policy 10.1.0.0/16, which reopens 10.0.0.0/8 private-use "
            "(RFC 1918): allowed",
        ),
        ("8.8.8.8", (parse_prefix("8.8.0.0/16"),), "8.8.8.8 is in policy 8.8.0.0/16: allowed"),
        ("::1", NONE, "::1 is in ::1/128 loopback (RFC 4291): denied"),
        (
            "64:ff9b::8.8.8.8",
            NONE,
            "64:ff9b::808:808 embeds 8.8.8.8 (NAT64 well-known prefix, RFC 6052); "
            "8.8.8.8 matches no deny prefix: allowed",
        ),
    ],
)
def test_explain(text: str, allow: tuple[Prefix, ...], sentence: str) -> None:
    assert judge(text, SPECIAL, allow).explain() == sentence
