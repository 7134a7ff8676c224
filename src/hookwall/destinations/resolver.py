"""DNS resolution that hookwall does itself, so the address it checks is the one it connects to.

The operating system never resolves a destination: mitmproxy is handed the literal IP this
module returned. Answers are cached for at most their TTL (capped by ``max_ttl``) in a bounded
LRU, and concurrent lookups of one name share a single query, so a busy destination costs no
lookup per request and a burst costs one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from hookwall.destinations.addresses import IPAddress


class DnsFailure(Exception):
    """The name could not be resolved to addresses we can judge (fail closed)."""


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    addresses: tuple[IPAddress, ...]
    ttl: float  # seconds the answer may be reused (0: not cached)
    cached: bool = False


class Resolver:
    """A/AAAA lookups with a TTL-bounded LRU cache and single-flight coalescing."""

    def __init__(
        self,
        servers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = 2.0,
        max_ttl: float = 300.0,
        cache_size: int = 10_000,
    ) -> None:
        self.timeout = timeout
        self.max_ttl = max_ttl
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, tuple[IPAddress, ...]]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Resolution]] = {}
        self._resolver = self._make_resolver(servers)

    @staticmethod
    def _make_resolver(servers: Sequence[tuple[str, int]]) -> dns.asyncresolver.Resolver:
        if servers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]
        else:
            try:
                resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = []
        resolver.cache = None  # our own cache: TTL ceiling, bounded size, no negative entries
        return resolver

    @property
    def servers(self) -> list[str]:
        return [str(ns) for ns in self._resolver.nameservers]

    async def resolve(self, name: str) -> Resolution:
        """Every A and AAAA address of ``name``; DnsFailure if there is none or any query fails."""
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None:
            expires, addresses = hit
            if expires > now:
                self._cache.move_to_end(name)
                return Resolution(name, addresses, expires - now, cached=True)
            del self._cache[name]
        pending = self._inflight.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Resolution] = asyncio.get_running_loop().create_future()
        self._inflight[name] = future
        try:
            result = await self._query(name)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, DnsFailure) else DnsFailure(str(exc)))
            future.exception()  # mark retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(result)
            self._store(result)
            return result
        finally:
            del self._inflight[name]

    def _store(self, result: Resolution) -> None:
        if result.ttl <= 0 or self.cache_size <= 0:
            return
        self._cache[result.name] = (time.monotonic() + result.ttl, result.addresses)
        self._cache.move_to_end(result.name)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _query(self, name: str) -> Resolution:
        if not self._resolver.nameservers:
            raise DnsFailure("no DNS servers configured (pass --dns-server or fix resolv.conf)")
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise DnsFailure(f"{name!r} is not a valid DNS name: {exc}") from None
        answers = await asyncio.gather(
            self._query_type(qname, dns.rdatatype.A),
            self._query_type(qname, dns.rdatatype.AAAA),
        )
        addresses: list[IPAddress] = []
        ttls: list[float] = []
        for found, ttl in answers:
            addresses.extend(found)
            if found:
                ttls.append(ttl)
        if not addresses:
            raise DnsFailure(f"{name} has no A or AAAA records")
        ttl = min(min(ttls), self.max_ttl)
        return Resolution(name, tuple(addresses), ttl)

    async def _query_type(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> tuple[list[IPAddress], float]:
        kind = dns.rdatatype.to_text(rdtype)
        try:
            answer = await self._resolver.resolve(
                qname, rdtype, lifetime=self.timeout, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            raise DnsFailure(
                f"{qname.to_text(omit_final_dot=True)} does not exist (NXDOMAIN)"
            ) from None
        except dns.resolver.LifetimeTimeout:
            raise DnsFailure(
                f"{kind} lookup of {qname.to_text(omit_final_dot=True)} timed out "
                f"after {self.timeout:g}s"
            ) from None
        except dns.resolver.NoNameservers as exc:
            raise DnsFailure(f"{kind} lookup failed: every DNS server refused ({exc})") from None
        except dns.exception.DNSException as exc:
            raise DnsFailure(f"{kind} lookup failed: {exc}") from None
        if answer.rrset is None:
            return [], 0.0
        # Records of other types in the answer (e.g. hostile extras) are ignored by dnspython;
        # every address record of the asked type is returned and judged.
        found: list[IPAddress] = [ipaddress.ip_address(rdata.address) for rdata in answer.rrset]
        return found, float(answer.rrset.ttl)
