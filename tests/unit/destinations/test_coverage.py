"""Address-set arithmetic and what allow rows reopen of the special-purpose space."""

from __future__ import annotations

import ipaddress
import random
from ipaddress import ip_address, ip_network

import pytest

from hookwall.destinations.addresses import (
    SPECIAL_PURPOSE,
    Prefix,
    canonical_prefix,
    check_address,
    parse_prefix,
)
from hookwall.destinations.coverage import AddressSet, closed_blocks, reopened_by


def rows(*texts: str) -> tuple[Prefix, ...]:
    return tuple(canonical_prefix(parse_prefix(text)) for text in texts)


def nets(*texts: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ip_network(text) for text in texts]


def test_set_operations_match_ipaddress() -> None:
    a = AddressSet.of(nets("10.0.0.0/8", "192.168.0.0/16", "fc00::/7"))
    b = AddressSet.of(nets("10.128.0.0/9", "192.168.1.0/24", "fd00::/8"))
    assert (a & b).networks() == nets("10.128.0.0/9", "192.168.1.0/24", "fd00::/8")
    expected = [
        *ipaddress.IPv4Network("10.0.0.0/8").address_exclude(ipaddress.IPv4Network("10.128.0.0/9")),
        *ipaddress.IPv4Network("192.168.0.0/16").address_exclude(
            ipaddress.IPv4Network("192.168.1.0/24")
        ),
    ]
    assert (a - b).networks() == sorted(ipaddress.collapse_addresses(expected)) + nets("fc00::/8")
    assert (
        AddressSet.of(nets("127.0.0.0/9")) | AddressSet.of(nets("127.128.0.0/9"))
    ).networks() == (nets("127.0.0.0/8"))
    assert not (a - a)


def test_random_set_operations_agree_with_membership() -> None:
    rng = random.Random(14)
    for _ in range(200):
        parts = [
            ip_network((rng.getrandbits(32) & ~((1 << (32 - n)) - 1), n))
            for n in (rng.randint(4, 30) for _ in range(6))
        ]
        a, b = AddressSet.of(parts[:3]), AddressSet.of(parts[3:])
        for _ in range(20):
            probe = ipaddress.IPv4Address(rng.getrandbits(32))
            in_a = any(probe in n for n in parts[:3])
            in_b = any(probe in n for n in parts[3:])

            def has(s: AddressSet, address: ipaddress.IPv4Address = probe) -> bool:
                return any(address in n for n in s.networks())

            assert has(a | b) == (in_a or in_b)
            assert has(a & b) == (in_a and in_b)
            assert has(a - b) == (in_a and not in_b)


def test_closed_blocks_are_the_outermost_plain_rows() -> None:
    blocks = {str(b.network) for b in closed_blocks()}
    assert {"127.0.0.0/8", "10.0.0.0/8", "192.0.0.0/24", "::/96", "2001::/23"} <= blocks
    # nested rows and the embedding prefixes (judged as IPv4) are not blocks of their own
    assert not {"0.0.0.0/32", "192.0.0.8/32", "::1/128", "2001::/32", "::ffff:0:0/96"} & blocks


@pytest.mark.parametrize(
    ("allow", "reopened"),
    [
        (("127.0.0.0/9", "127.128.0.0/9"), ["127.0.0.0/8"]),  # two halves cancel the row
        (("127.0.0.2/32",), ["127.0.0.2/32"]),
        (("127.0.0.0/8",), []),  # a tie: deny wins
        (("0.0.0.0/0", "::/0"), []),  # shorter than every deny row
        (("::ffff:0:0/97",), []),  # = 0.0.0.0/1, shorter than every IPv4 deny row
        (("::ffff:127.0.0.0/104",), []),  # = 127.0.0.0/8, a tie
        (("::ffff:127.0.0.0/105",), ["127.0.0.0/9"]),
        (("2002:7f00::/25",), ["127.0.0.0/9"]),  # 6to4 spelling
        (("64:ff9b::a00:0/104",), []),  # NAT64 spelling of 10.0.0.0/8: a tie
        (("10.0.0.0/9", "64:ff9b::a80:0/105"), ["10.0.0.0/8"]),  # v4 + NAT64 halves
        (("8.8.8.0/24", "fe80::/11", "fe80::/11"), ["fe80::/11"]),
        (tuple(f"192.168.{i}.0/24" for i in range(256)), ["192.168.0.0/16"]),  # many small rows
        (("2001:db8::/33", "2001:db8:8000::/33"), ["2001:db8::/32"]),
        # not decoded, denied whole: rows inside are judged as IPv6 and reopen IPv6 space
        (("2001:0:4136:e378::/64",), ["2001:0:4136:e378::/64"]),  # Teredo
        (("::7f00:1/128",), ["::7f00:1/128"]),  # IPv4-compatible
        (("64:ff9b:1::/64",), ["64:ff9b:1::/64"]),  # local-use NAT64
    ],
)
def test_reopened_space(allow: tuple[str, ...], reopened: list[str]) -> None:
    result = reopened_by(rows(*allow), SPECIAL_PURPOSE)
    assert [str(n) for n in result.total.networks()] == reopened
    assert bool(result) == bool(reopened)


def test_reopened_names_the_blocks() -> None:
    result = reopened_by(rows("127.0.0.0/9", "127.128.0.0/9", "10.1.0.0/16"), SPECIAL_PURPOSE)
    assert [
        (str(b.network), b.label, [str(n) for n in part.networks()]) for b, part in result.blocks()
    ] == [
        ("10.0.0.0/8", "private-use (RFC 1918)", ["10.1.0.0/16"]),
        ("127.0.0.0/8", "loopback (RFC 1122)", ["127.0.0.0/8"]),
    ]
    assert len(result.rows) == 3


def test_a_longer_deny_inside_an_allow_closes_it_again() -> None:
    deny = (*SPECIAL_PURPOSE, *rows("127.0.0.0/10"))
    result = reopened_by(rows("127.0.0.0/9"), deny)
    assert [str(n) for n in result.total.networks()] == ["127.64.0.0/10"]


def test_only_space_the_deny_rows_deny_counts() -> None:
    # An unsafe policy that dropped special-purpose and denies 10/8 only: 127/9 reopens nothing.
    assert not reopened_by(rows("127.0.0.0/9"), rows("10.0.0.0/8"))


def test_reopened_agrees_with_check_address() -> None:
    """The analysis is the runtime rule: every address it reports is allowed at runtime and
    denied without the allow rows, and addresses outside it keep their verdict."""
    rng = random.Random(1414)
    allow = rows("127.0.0.0/9", "10.1.0.0/16", "::ffff:192.168.0.0/112", "fd00::/9", "8.8.0.0/16")
    deny = (*SPECIAL_PURPOSE, *rows("10.1.2.0/24"))
    total = reopened_by(allow, deny).total.networks()
    blocks = [b.network for b in closed_blocks()]
    probes = [ip_address(rng.getrandbits(32)) for _ in range(3000)]
    probes += [ip_address(t) for t in ("127.0.0.1", "127.200.0.1", "10.1.2.3", "10.1.3.3")]
    probes += [ip_address(t) for t in ("192.168.7.7", "fd00::1", "fd80::1", "::ffff:127.0.0.1")]
    for address in probes:
        inside = any(address in n for n in total)
        before = check_address(address, deny, ()).allowed
        after = check_address(address, deny, allow).allowed
        if address.version == 6 and (v4 := getattr(address, "ipv4_mapped", None)) is not None:
            inside = any(v4 in n for n in total)
        special = any(address in b for b in blocks)
        if inside:
            assert after and not before, address
        elif special or address.version == 6:
            assert after == before, address
