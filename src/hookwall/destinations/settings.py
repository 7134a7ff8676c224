"""Where a destination may connect: the ``dns`` section, and in ``defaults`` and destinations
the ``network`` tables (``deny``, ``allow``, ``ports``), ``tls``, ``connect_refusals``, ``hosts``
and ``ca_bundle``.

Values are frozen and validated at load, so a bad CIDR or port is a load error with file and
line (``parse_server`` also reads the command line's DNS servers). Allow rows are recorded
with where they were written (``NetworkReader.allow_rows``): the reopening check
(``destinations.reopen``) points its errors at them.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal

from hookwall.config.checker import Checker, is_whole, subpath
from hookwall.config.errors import Location
from hookwall.config.shapes import (
    CIDR,
    AnyOf,
    Duration,
    Fields,
    ListOf,
    Nullable,
    OneOf,
    Text,
    Whole,
)
from hookwall.config.yamlnodes import YMap, YNode, YScalar
from hookwall.destinations.addresses import (
    NAMED_SETS,
    AddressVerdict,
    IPAddress,
    Prefix,
    canonical_prefix,
    check_address,
    named_set,
    parse_prefix,
)
from hookwall.destinations.match import canonical_pattern

__all__ = [
    "BUILTIN_DENY_SETS",
    "BUILTIN_PORTS",
    "CA_BUNDLE",
    "CONNECT_REFUSALS",
    "CONNECT_REFUSALS_SHAPE",
    "DNS",
    "HOSTS",
    "NETWORK",
    "TLS",
    "TLS_MODES",
    "ConnectRefusals",
    "DnsSettings",
    "NamedSets",
    "NetworkReader",
    "NetworkSettings",
    "PortSet",
    "TlsMode",
    "check_ca_bundle",
    "check_connect_refusals",
    "check_dns",
    "check_hosts",
    "parse_server",
]

TlsMode = Literal["intercept", "passthrough"]
TLS_MODES: tuple[TlsMode, ...] = ("intercept", "passthrough")
# Where a CONNECT the destination decision refuses is answered: inside the TLS session, as the
# response to the first request there (what every HTTPS client reads), or on the CONNECT
# itself (what most clients only report as "tunnel failed: 403"). Passthrough destinations
# have no certificate of hookwall's to answer with: theirs is always on the CONNECT.
ConnectRefusals = Literal["inside-tls", "on-connect"]
CONNECT_REFUSALS: tuple[ConnectRefusals, ...] = ("inside-tls", "on-connect")
# The deny sets every policy starts from; dropping them needs 'unsafe: true'.
BUILTIN_DENY_SETS: tuple[str, ...] = ("special-purpose",)

_VERDICT_CACHE_SIZE = 4096
_SET_NAME = re.compile(r"[a-z][a-z_-]*", re.IGNORECASE)
_PORT_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")

# -- the shapes of these sections (config/shapes.py) ---------------------------------------

_DNS_TIMEOUT = Duration(True, doc="per lookup, A and AAAA together (default 2s)")
_DNS_MAX_TTL = Duration(False, doc="answers are cached for their TTL, never longer (5m)")
_DNS_CACHE_SIZE = Whole(0, doc="answers cached (default 10000)")
DNS = Fields(
    {
        "servers": ListOf(
            Text("a resolver address like '1.1.1.1' or '[::1]:53'"),
            doc="IP[:PORT] of each resolver; empty: the system's (--dns-server overrides)",
        ),
        "timeout": _DNS_TIMEOUT,
        "max_ttl": _DNS_MAX_TTL,
        "cache_size": _DNS_CACHE_SIZE,
    },
    doc="how hookwall resolves destinations (it never lets a sender resolve for it)",
)
NETWORK = Fields(
    {
        "deny": ListOf(
            AnyOf((OneOf(NAMED_SETS), *CIDR.options)),
            doc="named sets (special-purpose, ...) and CIDRs never connected to",
        ),
        "allow": ListOf(CIDR, doc="CIDR exceptions to deny"),
        "ports": ListOf(
            AnyOf(
                (
                    Whole(1, 65535),
                    Text("a port range like '8000-8999'", f"^{_PORT_RANGE.pattern}$"),
                )
            ),
            min_items=1,
            doc="destination ports, e.g. [443, '8000-8999'] (default [80, 443])",
        ),
    },
    doc="which resolved addresses and ports may be connected to",
)
TLS = OneOf(TLS_MODES, doc="intercept: hookwall sees (and signs) the request; passthrough: not")
CONNECT_REFUSALS_SHAPE = OneOf(
    CONNECT_REFUSALS,
    doc="where a refused CONNECT is answered: inside-tls (readable by every HTTPS client) or "
    "on-connect",
)
HOSTS = ListOf(
    Text("a host pattern like 'hooks.example.com' or '*.example.org'", r"\S"),
    min_items=1,
    unique=True,
    doc="host patterns this entry applies to; the most specific pattern wins",
)
CA_BUNDLE = Nullable(
    Text("a path to a PEM file"),
    doc="extra PEM CAs for receivers (a path relative to the policy file)",
)


@dataclass(frozen=True, slots=True)
class PortSet:
    """Allowed destination ports as sorted, merged inclusive ranges."""

    ranges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        # Normalise so membership can bisect and str() is stable however it was written.
        merged: list[tuple[int, int]] = []
        for low, high in sorted(self.ranges):
            if not 1 <= low <= high <= 65535:
                raise ValueError(f"invalid port range {low}-{high}")
            if merged and low <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        object.__setattr__(self, "ranges", tuple(merged))

    @classmethod
    def of(cls, *ports: int) -> PortSet:
        """PortSet.of(80, 443): single ports, the common case in code and tests."""
        return cls(tuple((port, port) for port in ports))

    def __contains__(self, port: object) -> bool:
        if not isinstance(port, int):
            return False
        index = bisect_right(self.ranges, (port, 65536)) - 1
        return index >= 0 and self.ranges[index][1] >= port

    def __str__(self) -> str:
        return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


BUILTIN_PORTS = PortSet.of(80, 443)


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """Which resolved addresses and ports a destination may use."""

    deny: tuple[Prefix, ...]
    allow: tuple[Prefix, ...]
    ports: PortSet
    # Verdicts per address: the settings are immutable, so a verdict never goes stale, and a
    # busy destination's answers are judged once instead of on every request.
    _verdicts: dict[IPAddress, AddressVerdict] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def check(self, address: IPAddress) -> AddressVerdict:
        """``check_address`` against these tables, memoised (bounded)."""
        verdict = self._verdicts.get(address)
        if verdict is None:
            if len(self._verdicts) >= _VERDICT_CACHE_SIZE:
                self._verdicts.clear()
            verdict = self._verdicts[address] = check_address(address, self.deny, self.allow)
        return verdict


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """Resolver settings; no servers means the system resolvers."""

    servers: tuple[tuple[str, int], ...] = ()
    timeout: float = 2.0
    max_ttl: float = 300.0
    cache_size: int = 10000


class NamedSets:
    """Expands named address sets once per load, however many files mention them."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Prefix, ...]] = {}

    def get(self, name: str) -> tuple[Prefix, ...]:
        """The prefixes of a named set; KeyError for unknown names."""
        if name not in self._cache:
            self._cache[name] = named_set(name)
        return self._cache[name]


# -- dns --------------------------------------------------------------------------------


def check_dns(checker: Checker, node: YNode) -> DnsSettings | None:
    """The top-level ``dns`` mapping; None for an empty one."""
    mapping = checker.mapping(node, "dns")
    if mapping is None:
        return None
    checker.keys(mapping, "dns", DNS.names)
    defaults = DnsSettings()
    servers = defaults.servers
    timeout, max_ttl, cache_size = defaults.timeout, defaults.max_ttl, defaults.cache_size
    entries = mapping.entries
    if "servers" in entries:
        servers = _servers(checker, entries["servers"].value)
    if "timeout" in entries:
        timeout = _DNS_TIMEOUT.read(checker, entries["timeout"].value, "dns.timeout")
    if "max_ttl" in entries:
        max_ttl = _DNS_MAX_TTL.read(checker, entries["max_ttl"].value, "dns.max_ttl")
    if "cache_size" in entries:
        size = _DNS_CACHE_SIZE.read(checker, entries["cache_size"].value, "dns.cache_size")
        cache_size = cache_size if size is None else size
    return DnsSettings(servers, timeout, max_ttl, cache_size)


def parse_server(text: str) -> tuple[str, int]:
    """Parse ``IP[:PORT]`` / ``[IPv6]:PORT`` into (ip, port); ValueError with a clear message."""
    raw = text.strip()
    host, port = raw, 53
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ValueError(f"DNS server {text!r}: missing ']' after the IPv6 address")
        host, rest = raw[1:end], raw[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"DNS server {text!r}: expected [IPv6]:PORT")
            port = _port(rest[1:], text)
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
        port = _port(port_text, text)
    try:
        host = str(ipaddress.ip_address(host))  # canonical: '2001:DB8::53' -> '2001:db8::53'
    except ValueError:
        raise ValueError(
            f"DNS server {text!r}: expected an IP address (hookwall does not resolve the name of "
            "its own resolver), e.g. 1.1.1.1, 127.0.0.1:5353 or [::1]:53"
        ) from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"DNS server {whole!r}: port must be a number from 1 to 65535")
    return int(text)


def _servers(checker: Checker, node: YNode) -> tuple[tuple[str, int], ...]:
    items = checker.items(node, "dns.servers", "a list", 'write servers: ["1.1.1.1"]')
    result: list[tuple[str, int]] = []
    for index, item in enumerate(items or []):
        path = f"dns.servers[{index}]"
        text = checker.string(item, path, "a resolver address like '1.1.1.1' or '[::1]:53'")
        if text is None:
            continue
        try:
            result.append(parse_server(text))
        except ValueError as exc:
            checker.issue(item.location, f"{path}: {exc}")
    return tuple(result)


# -- network: deny, allow, ports --------------------------------------------------------

Network = tuple[tuple[Prefix, ...] | None, tuple[Prefix, ...] | None, PortSet | None]


class NetworkReader:
    """Reads ``network`` mappings of one file, remembering where each allow row was written
    (location, path): the reopening check points its errors at the rows."""

    def __init__(self, checker: Checker, sets: NamedSets) -> None:
        self.checker = checker
        self.sets = sets
        self.allow_rows: dict[Prefix, tuple[Location, str]] = {}

    def network(self, node: YNode, path: str) -> Network:
        """(deny, allow, ports) as written; None for what was not given."""
        mapping = self.checker.mapping(node, path)
        if mapping is None:
            return None, None, None
        self.checker.keys(mapping, path, NETWORK.names)
        entries = mapping.entries
        deny = allow = None
        ports = None
        if "deny" in entries:
            deny = self._prefixes(entries["deny"].value, subpath(path, "deny"), "deny")
        if "allow" in entries:
            allow = self._prefixes(entries["allow"].value, subpath(path, "allow"), "allow")
        if "ports" in entries:
            ports = self._ports(entries["ports"].value, subpath(path, "ports"))
        return deny, allow, ports

    def _prefixes(
        self, node: YNode, path: str, kind: Literal["deny", "allow"]
    ) -> tuple[Prefix, ...]:
        example = "[special-purpose, 192.0.2.0/24]" if kind == "deny" else "[10.1.0.0/16]"
        items = self.checker.items(node, path, "a list", f"write {kind}: {example}")
        result: list[Prefix] = []
        for index, item in enumerate(items or []):
            item_path = f"{path}[{index}]"
            text = self.checker.string(item, item_path, "a CIDR like '10.0.0.0/8'")
            if text is not None:
                result.extend(self._prefix(text, item, item_path, kind))
        return tuple(result)

    def _prefix(
        self, text: str, node: YNode, path: str, kind: Literal["deny", "allow"]
    ) -> tuple[Prefix, ...]:
        checker = self.checker
        if text in NAMED_SETS:
            if kind == "allow":
                checker.issue(
                    node.location,
                    f"{path}: named sets can only be denied; list the CIDRs you want to allow",
                )
                return ()
            try:
                return self.sets.get(text)
            except KeyError:
                pass  # listed but not expandable: report like any unknown name below
        try:
            parsed = parse_prefix(text, label=f"policy {kind} {text} ({node.location})")
        except ValueError as exc:
            if _SET_NAME.fullmatch(text):
                close = difflib.get_close_matches(text, NAMED_SETS, n=1)
                known = f"known sets: {', '.join(NAMED_SETS)}"
                hint = f"did you mean {close[0]!r}? ({known})" if close else known
                checker.issue(node.location, f"{path}: unknown named set {text!r}; {hint}")
            else:
                checker.issue(node.location, f"{path}: {exc}")
            return ()
        try:
            # Embedded IPv4 is judged as IPv4 at runtime, so the row is too.
            row = canonical_prefix(parsed)
        except ValueError as exc:
            checker.issue(node.location, f"{path}: {exc}")
            return ()
        if kind == "allow":
            self.allow_rows[row] = (node.location, path)
        return (row,)

    def _ports(self, node: YNode, path: str) -> PortSet | None:
        hint = "write ports: [443, '8000-8999']"
        items = self.checker.items(node, path, "a list of ports", hint)
        if items is None:
            return None
        if not items:
            self.checker.issue(
                node.location,
                f"{path}: empty list; list at least one port (use action: deny to block a "
                "destination)",
            )
            return None
        ranges: list[tuple[int, int]] = []
        for index, item in enumerate(items):
            parsed = _port_range(self.checker, item, f"{path}[{index}]")
            if parsed is not None:
                ranges.append(parsed)
        return PortSet(tuple(ranges)) if len(ranges) == len(items) else None


def _port_range(checker: Checker, node: YNode, path: str) -> tuple[int, int] | None:
    value = node.value if isinstance(node, YScalar) else None
    if is_whole(value):
        low = high = value
    elif isinstance(value, str) and (match := _PORT_RANGE.fullmatch(value)):
        low = int(match[1])
        high = int(match[2]) if match[2] else low
    else:
        checker.expected(node, path, "a port 1-65535 or a range like '8000-8999'")
        return None
    for port in (low, high):
        if not 1 <= port <= 65535:
            checker.issue(node.location, f"{path}: port {port} is out of range; use 1-65535")
            return None
    if low > high:
        checker.issue(node.location, f"{path}: range {value!r} is backwards; write '{high}-{low}'")
        return None
    return low, high


# -- hosts and the upstream CAs ---------------------------------------------------------


def check_hosts(checker: Checker, rule: YMap, path: str) -> list[tuple[str, Location, str]]:
    """A destination's ``hosts``: (canonical pattern, where, path) for each, duplicates
    within the list refused (duplicates across destinations are judged at load)."""
    entry = rule.entries.get("hosts")
    hosts_path = subpath(path, "hosts")
    if entry is None:
        checker.issue(
            rule.location, f"{path}: missing 'hosts'; list the host patterns it applies to"
        )
        return []
    hint = 'write hosts: ["hooks.example.com"]'
    items = checker.items(entry.value, hosts_path, "a list of host patterns", hint)
    if items is None:
        return []
    if not items:
        checker.issue(
            entry.value.location,
            f"{hosts_path}: empty list; list at least one host pattern",
        )
    result: list[tuple[str, Location, str]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        item_path = f"{hosts_path}[{index}]"
        text = checker.string(item, item_path, "a host pattern like 'hooks.example.com'")
        if text is None:
            continue
        try:
            pattern = canonical_pattern(text)
        except ValueError as exc:
            checker.issue(item.location, f"{item_path}: {exc}")
            continue
        if pattern in seen:
            checker.issue(
                item.location,
                f"{item_path}: host pattern {pattern!r} is already listed as "
                f"{hosts_path}[{seen[pattern]}]; remove one",
            )
            continue
        seen[pattern] = index
        result.append((pattern, item.location, item_path))
    return result


def check_ca_bundle(checker: Checker, node: YNode) -> str | None:
    """``defaults.ca_bundle``: the absolute path of an existing PEM file, or None."""
    if isinstance(node, YScalar) and node.value is None:
        return None
    return checker.existing_file(node, "defaults.ca_bundle", "a path to a PEM file")


# -- where refused CONNECTs are answered --------------------------------------------------


def check_connect_refusals(checker: Checker, node: YNode, path: str) -> ConnectRefusals | None:
    """``connect_refusals``: one of ``CONNECT_REFUSALS``, or an issue that says what each means."""
    if isinstance(node, YScalar) and node.value in CONNECT_REFUSALS:
        value: ConnectRefusals = node.value
        return value
    close = (
        difflib.get_close_matches(node.value, CONNECT_REFUSALS, n=1, cutoff=0.5)
        if isinstance(node, YScalar) and isinstance(node.value, str)
        else []
    )
    hint = f"did you mean {close[0]!r}? " if close else ""
    checker.expected(
        node,
        path,
        "one of inside-tls, on-connect",
        f"{hint}write inside-tls (a refused destination is answered inside the TLS session, "
        "where every HTTPS client reads it) or on-connect (refused on the CONNECT itself)",
    )
    return None
