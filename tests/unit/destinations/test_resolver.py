"""The resolver hookwall checks and pins with: answers, TTL-capped LRU cache, single flight,
failures, and the DNS server syntax.

Every Resolver here is aimed at the local TestDnsServer explicitly: the system resolver is not
on loopback, and tests must never send a packet anywhere else. The module-scoped server is
shared, so each test uses names of its own and counts queries per name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dns.nameserver
import dns.resolver
import pytest

from hookwall.destinations import resolver as resolver_module
from hookwall.destinations.resolver import DnsFailure, Resolution, Resolver
from hookwall.destinations.settings import parse_server

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect a Test* class
    from tests.support.dnsserver import TestDnsServer

TIMEOUT = 1.0


def make(
    server: TestDnsServer,
    *,
    timeout: float = TIMEOUT,
    max_ttl: float = 300.0,
    cache_size: int = 10_000,
) -> Resolver:
    """A resolver that only ever asks the local test server."""
    return Resolver([server.address], timeout=timeout, max_ttl=max_ttl, cache_size=cache_size)


def resolve(resolver: Resolver, name: str) -> Resolution:
    return asyncio.run(resolver.resolve(name))


def texts(resolution: Resolution) -> list[str]:
    return [str(a) for a in resolution.addresses]


class FakeClock:
    """Stands in for time.monotonic in the resolver module, so TTLs expire without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """Replace only the resolver module's view of time (asyncio and dnspython keep real time)."""
    fake = FakeClock()
    monkeypatch.setattr(resolver_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    yield fake


# --- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "records"),
    [
        ("both.answers.test", ["127.0.0.2", "fd00:1::2"]),
        ("v4only.answers.test", ["127.0.0.2"]),
        ("v6only.answers.test", ["fd00:1::2"]),
        ("many.answers.test", ["127.0.0.2", "10.0.0.1", "127.0.0.3", "fd00:1::2", "::1"]),
    ],
)
def test_every_address_is_returned(
    dns_server: TestDnsServer, name: str, records: list[str]
) -> None:
    """The guard judges every answer, so none may be dropped; A answers come before AAAA.

    Order inside one RRset is not meaningful in DNS, so each family is compared as a set.
    """
    dns_server.add(name, *records)
    result = resolve(make(dns_server), name)
    v4 = {ipaddress.ip_address(r) for r in records if ipaddress.ip_address(r).version == 4}
    v6 = {ipaddress.ip_address(r) for r in records if ipaddress.ip_address(r).version == 6}
    assert result.name == name
    assert len(result.addresses) == len(records)
    assert set(result.addresses[: len(v4)]) == v4
    assert set(result.addresses[len(v4) :]) == v6
    assert result.cached is False
    assert result.ttl == 300


# --- cache -----------------------------------------------------------------------------------


def test_second_resolve_within_ttl_is_cached(dns_server: TestDnsServer) -> None:
    """A busy destination costs one lookup per TTL, not one per request."""
    dns_server.add("cached.cache.test", "127.0.0.2", ttl=60)
    resolver = make(dns_server)
    first = resolve(resolver, "cached.cache.test")
    second = resolve(resolver, "cached.cache.test")
    assert first.cached is False
    assert second.cached is True
    assert second.addresses == first.addresses
    assert 0 < second.ttl <= 60
    assert dns_server.queries["cached.cache.test"] == 1


def test_ttl_zero_is_never_cached(dns_server: TestDnsServer) -> None:
    """TTL 0 means 'ask every time' (rebinding relies on it; we must honour it)."""
    dns_server.add("zero.cache.test", "127.0.0.2", ttl=0)
    resolver = make(dns_server)
    results = [resolve(resolver, "zero.cache.test") for _ in range(3)]
    assert [r.cached for r in results] == [False, False, False]
    assert [r.ttl for r in results] == [0, 0, 0]
    assert dns_server.queries["zero.cache.test"] == 3


def test_ttl_expiry_requeries(dns_server: TestDnsServer, clock: FakeClock) -> None:
    """An answer is reused for its TTL and not a moment longer."""
    dns_server.add("expiry.cache.test", "127.0.0.2", ttl=30)
    resolver = make(dns_server)
    resolve(resolver, "expiry.cache.test")
    clock.now += 29.9
    assert resolve(resolver, "expiry.cache.test").cached is True
    clock.now += 0.1
    assert resolve(resolver, "expiry.cache.test").cached is False
    assert dns_server.queries["expiry.cache.test"] == 2


def test_max_ttl_caps_a_long_ttl(dns_server: TestDnsServer, clock: FakeClock) -> None:
    """A hostile one-hour TTL cannot pin an answer past the operator's ceiling."""
    dns_server.add("capped.cache.test", "127.0.0.2", ttl=3600)
    resolver = make(dns_server, max_ttl=0.2)
    first = resolve(resolver, "capped.cache.test")
    assert first.ttl == pytest.approx(0.2)
    clock.now += 0.1
    hit = resolve(resolver, "capped.cache.test")
    assert hit.cached is True
    assert hit.ttl == pytest.approx(0.1)
    clock.now += 0.1
    assert resolve(resolver, "capped.cache.test").cached is False
    assert dns_server.queries["capped.cache.test"] == 2


def test_lru_evicts_least_recently_used(dns_server: TestDnsServer) -> None:
    """The cache is bounded; a lookup refreshes recency, so the idle name is the one evicted."""
    for name in ("a.lru.test", "b.lru.test", "c.lru.test"):
        dns_server.add(name, "127.0.0.2", ttl=300)
    resolver = make(dns_server, cache_size=2)
    resolve(resolver, "a.lru.test")
    resolve(resolver, "b.lru.test")
    assert resolve(resolver, "a.lru.test").cached is True  # a is now the most recent
    resolve(resolver, "c.lru.test")  # evicts b
    assert resolve(resolver, "a.lru.test").cached is True
    assert resolve(resolver, "c.lru.test").cached is True
    assert resolve(resolver, "b.lru.test").cached is False
    assert dns_server.queries["a.lru.test"] == 1
    assert dns_server.queries["b.lru.test"] == 2
    assert dns_server.queries["c.lru.test"] == 1


def test_cache_size_zero_disables_cache(dns_server: TestDnsServer) -> None:
    """cache_size 0 is a valid 'never cache' setting, not a crash."""
    dns_server.add("off.lru.test", "127.0.0.2", ttl=300)
    resolver = make(dns_server, cache_size=0)
    assert [resolve(resolver, "off.lru.test").cached for _ in range(2)] == [False, False]
    assert dns_server.queries["off.lru.test"] == 2


# --- single flight ---------------------------------------------------------------------------


def test_concurrent_lookups_share_one_query(dns_server: TestDnsServer) -> None:
    """A burst of webhooks to one destination costs one lookup, and all see the same answer."""
    dns_server.add("burst.flight.test", "127.0.0.2", "fd00:1::2", ttl=0)
    resolver = make(dns_server)

    async def burst() -> list[Resolution]:
        return await asyncio.gather(*(resolver.resolve("burst.flight.test") for _ in range(20)))

    results = asyncio.run(burst())
    assert len(results) == 20
    assert {r.addresses for r in results} == {
        (ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("fd00:1::2"))
    }
    assert dns_server.queries["burst.flight.test"] == 1


def test_concurrent_failures_are_shared(dns_server: TestDnsServer) -> None:
    """Waiters of a failed lookup get a DnsFailure too, not a hang or a foreign exception."""
    resolver = make(dns_server)

    async def burst() -> list[Resolution | BaseException]:
        return await asyncio.gather(
            *(resolver.resolve("missing.flight.test") for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(burst())
    assert all(isinstance(r, DnsFailure) for r in results)
    assert resolver._inflight == {}


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "setup", "timeout", "message"),
    [
        ("nx.fail.test", None, TIMEOUT, "nx.fail.test does not exist (NXDOMAIN)"),
        ("broken.fail.test", "servfail", TIMEOUT, "every DNS server refused"),
        ("silent.fail.test", "silent", 0.3, "timed out after 0.3s"),
        ("empty.fail.test", "empty", TIMEOUT, "empty.fail.test has no A or AAAA records"),
    ],
)
def test_failures_are_dns_failure(
    dns_server: TestDnsServer, name: str, setup: str | None, timeout: float, message: str
) -> None:
    """Every way DNS can fail ends in DnsFailure with a sentence an operator can act on."""
    if setup == "servfail":
        dns_server.servfail(name)
    elif setup == "silent":
        dns_server.silent(name)
    elif setup == "empty":
        dns_server.add(name)
    resolver = make(dns_server, timeout=timeout)
    with pytest.raises(DnsFailure, match=re.escape(message)):
        resolve(resolver, name)


def test_failures_are_not_cached(dns_server: TestDnsServer) -> None:
    """A name that did not resolve is asked again: no negative caching (it may appear later)."""
    resolver = make(dns_server)
    for _ in range(2):
        with pytest.raises(DnsFailure):
            resolve(resolver, "later.test")
    dns_server.add("later.test", "127.0.0.2")
    result = resolve(resolver, "later.test")
    assert result.cached is False
    assert texts(result) == ["127.0.0.2"]


def test_nodata_failure_is_not_cached(dns_server: TestDnsServer) -> None:
    """An empty answer (NOERROR, no records) is re-asked every time, like any failure."""
    dns_server.add("nodata.fail.test")
    resolver = make(dns_server)
    for _ in range(2):
        with pytest.raises(DnsFailure, match="no A or AAAA"):
            resolve(resolver, "nodata.fail.test")
    assert dns_server.queries["nodata.fail.test"] == 2


def test_no_servers_configured(dns_server: TestDnsServer) -> None:
    """With no server to ask, resolution fails closed with a hint instead of crashing."""
    resolver = make(dns_server)
    resolver._resolver.nameservers = []
    assert resolver.servers == []
    with pytest.raises(DnsFailure, match="no DNS servers configured"):
        resolve(resolver, "anything.test")


def test_unreadable_resolv_conf_means_no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --dns-server and without a usable resolv.conf, lookups fail closed (no packet)."""

    def no_config(self: object, *args: object, **kwargs: object) -> None:
        raise dns.resolver.NoResolverConfiguration  # what dnspython raises on no resolv.conf

    monkeypatch.setattr(dns.resolver.BaseResolver, "read_resolv_conf", no_config)
    resolver = Resolver(timeout=TIMEOUT)
    assert resolver.servers == []
    with pytest.raises(DnsFailure, match="no DNS servers configured"):
        resolve(resolver, "anything.test")


def test_explicit_servers_ignore_resolv_conf(
    dns_server: TestDnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configured servers are used as given; the system configuration is not even read."""

    def forbidden(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError("resolv.conf must not be read when servers are given")

    monkeypatch.setattr(dns.resolver.BaseResolver, "read_resolv_conf", forbidden)
    resolver = make(dns_server)
    assert resolver.servers == [str(dns.nameserver.Do53Nameserver(*dns_server.address))]


# --- rebinding -------------------------------------------------------------------------------


def test_rebinding_name_changes_answer(dns_server: TestDnsServer) -> None:
    """With TTL 0 each lookup is fresh, so the guard sees (and pins) each round's answer."""
    dns_server.add_rounds("rebind.test", ["127.0.0.2"], ["127.0.0.1"], ttl=0)
    resolver = make(dns_server)
    assert texts(resolve(resolver, "rebind.test")) == ["127.0.0.2"]
    assert texts(resolve(resolver, "rebind.test")) == ["127.0.0.1"]
    assert dns_server.queries["rebind.test"] == 2


# --- parse_server ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.1.1.1", ("1.1.1.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("  127.0.0.1:53 ", ("127.0.0.1", 53)),
        ("[::1]:53", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
        ("::1", ("::1", 53)),
        ("2001:db8::53", ("2001:db8::53", 53)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    """IP, IP:PORT and [IPv6]:PORT are accepted; a bare IPv6 keeps its colons."""
    assert parse_server(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dns.google", "expected an IP address"),
        ("dns.google:53", "expected an IP address"),
        ("1.1.1.1:0", "port must be a number from 1 to 65535"),
        ("1.1.1.1:99999", "port must be a number from 1 to 65535"),
        ("1.1.1.1:", "port must be a number"),
        ("1.1.1.1:dns", "port must be a number"),
        ("[::1", "missing ']'"),
        ("[::1]x", r"expected \[IPv6\]:PORT"),
        ("[::1]:0", "port must be a number"),
        ("[dns.google]:53", "expected an IP address"),
        ("", "expected an IP address"),
    ],
)
def test_parse_server_errors(text: str, message: str) -> None:
    """Bad server specs fail at startup with the offending text in the message."""
    with pytest.raises(ValueError, match=message) as info:
        parse_server(text)
    assert repr(text) in str(info.value)
