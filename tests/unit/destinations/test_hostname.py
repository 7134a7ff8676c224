"""Tests for host canonicalisation: every spelling of an address reads as that address."""

# Confusable look-alike characters (full-width digits, dots, '@', '/') are the point of these tests.
# ruff: noqa: RUF001

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address

import pytest

from hookwall.destinations.hostname import Host, InvalidHost, canonicalize_host

LOOPBACK_V4 = IPv4Address("127.0.0.1")
LOOPBACK_V6 = IPv6Address("::1")


@pytest.mark.parametrize(
    "raw",
    [
        "127.0.0.1", "2130706433", "0x7f000001", "0X7F000001", "0x7F.1", "0177.0.0.1", "0177.1",
        "127.1", "127.0.1", "017700000001", "0x7f.0.0.0x1", "127.000.000.001",
        "0000000177.0.0.1", "127.0.0.1.", "0x7f.0x0.0x0.0x1", "0x7f.0x000001", "127.0.0.0x1",
        "0x00007f.0.0.01", "127.0x0.1", "0177.0.0x0.1", "127.0.00000000001",
        # UTS-46 mapping runs before numeric parsing: full-width, ideographic dots, math digits.
        "１２７．０．０．１", "１２７。０。０。１", "127。0。0。1", "１２７．０．０．１．",
        "０ｘ７ｆ.1",
        "０Ｘ７Ｆ．１", "𝟏𝟐𝟕.0.0.1", "127｡0｡0｡1",
        # Ignored code points (soft hyphen, zero-width no-break space) vanish in mapping.
        "127.0.0.1\u00ad", "\ufeff127.0.0.1",
    ],
)  # fmt: skip
def test_spellings_of_ipv4_loopback(raw: str) -> None:
    assert canonicalize_host(raw) == Host("127.0.0.1", LOOPBACK_V4, False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", "0.0.0.0"), ("0x", "0.0.0.0"), ("0x.0x.0x.0x", "0.0.0.0"), ("00", "0.0.0.0"),
        ("4294967295", "255.255.255.255"), ("0xffffffff", "255.255.255.255"),
        ("037777777777", "255.255.255.255"), ("1.16777215", "1.255.255.255"),
        ("1.2.65535", "1.2.255.255"), ("169.254.43518", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"), ("10.1", "10.0.0.1"), ("8.8.8.8", "8.8.8.8"),
        ("1.2.3.4.", "1.2.3.4"),
    ],
)  # fmt: skip
def test_other_ipv4_spellings(raw: str, expected: str) -> None:
    host = canonicalize_host(raw)
    assert host.ip == IPv4Address(expected) and host.text == expected
    assert not host.loopback_name


@pytest.mark.parametrize(
    "raw",
    [
        "[::1]", "::1", "[0:0:0:0:0:0:0:1]", "0:0:0:0:0:0:0:1", "[::0001]", "[0000::1]",
        "[0000:0000:0000:0000:0000:0000:0000:0001]", "[::1%25lo]", "::1%lo", "[::1%lo]",
        "[::1%25eth0.100]", "::1%1", "[::0:1]", "[0::0:0:1]",
    ],
)  # fmt: skip
def test_spellings_of_ipv6_loopback(raw: str) -> None:
    assert canonicalize_host(raw) == Host("::1", LOOPBACK_V6, False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("[::ffff:7f00:1]", "::ffff:127.0.0.1"),
        ("[::FFFF:7F00:1]", "::ffff:127.0.0.1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("[0:0:0:0:0:ffff:7f00:0001]", "::ffff:127.0.0.1"),
        ("[::127.0.0.1]", "::127.0.0.1"),
        ("[::ffff:0:127.0.0.1]", "::ffff:0:127.0.0.1"),
        ("[64:ff9b::127.0.0.1]", "64:ff9b::127.0.0.1"),
        ("[FE80::1%25ETH0]", "fe80::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("[2001:DB8::A]", "2001:db8::a"),
        ("[2001:0db8:0000:0000:0000:0000:0000:000a]", "2001:db8::a"),
    ],
)
def test_ipv6_literals_keep_their_form(raw: str, expected: str) -> None:
    host = canonicalize_host(raw)
    address = IPv6Address(expected)
    # Mapped addresses stay IPv6: classification unwraps them, not this module.
    assert host == Host(address.compressed, address, False)


@pytest.mark.parametrize(
    ("raw", "text", "loopback"),
    [
        ("example.com", "example.com", False),
        ("Example.COM.", "example.com", False),
        ("EXAMPLE.com", "example.com", False),
        ("123.foo", "123.foo", False),
        ("1.2.3.4.nip.io", "1.2.3.4.nip.io", False),
        ("foo.0xg", "foo.0xg", False),
        # The last label is not a number, so these are DNS names (their answers get judged).
        ("1.2.3.-1", "1.2.3.-1", False),
        ("-1", "-1", False),
        ("1e3", "1e3", False),
        ("127.0.0.1_", "127.0.0.1_", False),
        ("0x7f.1x", "0x7f.1x", False),
        ("_dmarc.example.com", "_dmarc.example.com", False),
        ("a-b.example", "a-b.example", False),
        ("bücher.example", "xn--bcher-kva.example", False),
        ("BÜCHER.example", "xn--bcher-kva.example", False),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", False),
        ("XN--BCHER-KVA.EXAMPLE.", "xn--bcher-kva.example", False),
        ("faß.de", "xn--fa-hia.de", False),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah", False),
        ("münchen。de", "xn--mnchen-3ya.de", False),
        ("ｅｘａｍｐｌｅ．ｃｏｍ", "example.com", False),
        ("localhost", "localhost", True),
        ("LOCALHOST.", "localhost", True),
        ("ＬＯＣＡＬＨＯＳＴ", "localhost", True),
        ("localhost。", "localhost", True),
        ("foo.LocalHost", "foo.localhost", True),
        ("a.b.localhost.", "a.b.localhost", True),
        ("localhost.localdomain", "localhost.localdomain", True),
        ("LOCALHOST.LOCALDOMAIN.", "localhost.localdomain", True),
        ("ip6-localhost", "ip6-localhost", True),
        ("ip6-loopback", "ip6-loopback", True),
        ("localhost.example", "localhost.example", False),
        ("notlocalhost", "notlocalhost", False),
        ("foolocalhost", "foolocalhost", False),
        ("localhost.localdomain.example", "localhost.localdomain.example", False),
        ("a" * 63 + ".example", "a" * 63 + ".example", False),
        (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61]), False),
    ],
)
def test_names(raw: str, text: str, loopback: bool) -> None:
    assert canonicalize_host(raw) == Host(text, None, loopback)


@pytest.mark.parametrize(
    "raw",
    [
        # empty, dots, lengths
        "", ".", "..", "。", ".example.com", "a..b", "a..", "example..com.", "a" * 64 + ".com",
        ".".join(["a" * 63] * 3 + ["b" * 62]), "ü" * 60 + ".com", "a" * 2000,
        # forbidden characters, raw and produced by mapping look-alikes
        "user@example.com", "evil.com@127.0.0.1", "a\\b", "127.0.0.1/", "a?b", "a#b",
        "127.0.0.1#.evil.com", "a%41.com", "%31%32%37.0.0.1", "a b", "a\tb", "a\nb", "a\rb",
        "127.0.0.1\x00.example.com", "\x00", "a\x7fb", "a\x85b", "a\x9fb", "a\u00a0b",
        "a\u3000b", "a\u2028b", "ａ＠ｂ", "ａ／ｂ", "ａ？ｂ", "ａ＃ｂ", "ａ％ｂ", "ａ＼ｂ",
        "ａ：ｂ", "\u2100.com", "［::1］", "：：１",
        # ASCII labels outside [a-z0-9_-]
        "a!b.com", "*.example.com", "a*b", "a,b", "a;b", "a=b", "a+b", "a'b", 'a"b', "a<b>",
        "a|b", "a~b", "a$b", "a&b", "a(b)", "a{b}", "a^b", "a`b",
        # numeric hosts that are not valid IPv4
        "1.2.3.4.5", "256.0.0.1", "0x100000000", "1.2.3.09", "foo.123", "1.2.3.08",
        "4294967296", "1.16777216", "1.2.65536", "1.256.0.0", "0x100.1", "00x7f.1",
        "0x7g.1", "1.foo.2", "127.0.0.1.1", "1.2.3.4x.5", "09", "127.0.0.1..", "0x.1.2.3.4",
        "0" * 64 + "1.0.0.1",
        "٣.٣.٣.٣",
        # IPv6 literals
        "[::1", "::1]", "[[::1]]", "[::1]]", "[]", "[", "]", "[::1]:80", "[::1].",
        "[127.0.0.1]", "[localhost]", "[example.com]", "[::g]", ":::1", "1:2:3:4:5:6:7:8:9",
        "[::1%]", "::1%", "[::1%25]", "::1%lo%lo", "[::1%25%32]", "::1%l/o", "::1%lö",
        "example.com:80", "127.0.0.1:80", "[::ffff:127.0.0.01]", "[::ffff:0x7f.1]",
        "[::１]", "a[::1]", "[::1]a", "[ ::1]",
        # IDNA
        "xn--abc", "xn--", "xn--a-", "xn---bbk", "xn--zz.com", "\u0300a.com", "a\u200db.com",
        "bü_cher.example", "☃.net", "\ud800.com", "a.\ud800", "\U000e0001.com",
    ],
)  # fmt: skip
def test_invalid_hosts(raw: str) -> None:
    with pytest.raises(InvalidHost) as info:
        canonicalize_host(raw)
    message = str(info.value)
    assert message.startswith("The host ") and message.endswith(".")
    assert "\n" not in message and "\x00" not in message


def test_invalid_host_is_a_value_error() -> None:
    assert issubclass(InvalidHost, ValueError)


def test_non_string_is_invalid_host() -> None:
    with pytest.raises(InvalidHost):
        canonicalize_host(b"127.0.0.1")  # type: ignore[arg-type]


def test_host_is_frozen() -> None:
    host = canonicalize_host("example.com")
    with pytest.raises(AttributeError):
        host.text = "evil.com"  # type: ignore[misc]


# --- fuzz --------------------------------------------------------------------------------

_PIECES = [
    *"abcxyz0189_-.:%[]@/\\?#xX ", "0x", "0X", "xn--", "127", "0177", "255", "256",
    "localhost", "::", "ffff", "%25", "..", "\t", "\x00", "\x7f", "\x85", "\u00ad", "\u200b",
    "\u200c", "\u200d", "\u0300", "\u05d0", "\u0627", "\u0661", "\ufeff", "\u3002", "\uff0e",
    "\uff61", "\uff10", "\uff11", "\uff58", "\uff3b", "\uff1a", "\uff05", "\uff0f", "\uff20",
    "\u2100", "\u3000", "\u00df", "\u00fc", "\u0130", "\u212a", "\ud800", "\udfff", "\U0001f600",
    "\U0001d7cf", "\U000e0041", "\u2488", "\u2024",
]  # fmt: skip

_SEEDS = [
    "127.0.0.1", "0x7f.1", "[::1]", "[fe80::1%25eth0]", "bücher.example", "localhost.",
    "１２７。０。０。１", "[::ffff:127.0.0.1]", "xn--bcher-kva.example", "a.b.c.d",
]  # fmt: skip


def _random_host(rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.4:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
    if choice < 0.6:
        return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 8)))
    if choice < 0.8:
        return ".".join(str(rng.randint(0, 1 << 33)) for _ in range(rng.randint(1, 5)))
    seed = list(rng.choice(_SEEDS))
    for _ in range(rng.randint(1, 3)):
        position = rng.randint(0, len(seed))
        action = rng.random()
        if action < 0.4:
            seed.insert(position, rng.choice(_PIECES))
        elif action < 0.7 and position < len(seed):
            del seed[position]
        elif position < len(seed):
            seed[position] = rng.choice(_PIECES)
    return "".join(seed)


def test_fuzz_only_invalid_host_and_idempotent() -> None:
    rng = random.Random(20240611)
    accepted = 0
    for _ in range(6000):
        raw = _random_host(rng)
        try:
            host = canonicalize_host(raw)
        except InvalidHost as exc:
            assert str(exc)
            continue
        accepted += 1
        assert host.text.isascii() and host.text == host.text.lower(), raw
        assert not any(c in host.text for c in "@\\/?#%[] \t\x00"), raw
        assert len(host.text) <= 253, raw
        if host.ip is not None:
            assert host.text == host.ip.compressed and not host.loopback_name, raw
        else:
            assert ":" not in host.text, raw
        # What we hand downstream must read back as itself.
        assert canonicalize_host(host.text) == host, raw
    assert accepted > 500  # the fuzzer must also exercise the accepting paths
