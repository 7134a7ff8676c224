"""Validation of one policy file: Y-node tree in, typed specs and located issues out.

Every check records an issue and carries on with a placeholder, so one load reports every
problem in the file. Cross-file checks (duplicates between files) live in ``load``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from hookwall.access.settings import Sender, SenderRef, check_rule_senders, check_senders
from hookwall.config.errors import Location, PolicyIssue
from hookwall.config.units import parse_duration
from hookwall.config.yamltree import YEntry, YList, YMap, YNode, YScalar, describe
from hookwall.deliveries.settings import LoggingSettings, check_logging, check_rule_logging
from hookwall.destinations.addresses import (
    NAMED_SETS,
    Prefix,
    canonical_prefix,
    named_set,
    parse_prefix,
)
from hookwall.destinations.match import canonical_pattern
from hookwall.destinations.resolver import parse_server
from hookwall.limits.settings import (
    Override,
    ProxySettings,
    check_limits,
    check_proxy,
    check_size,
    check_timeouts,
)
from hookwall.limits.shared_settings import SharedLimits, check_shared_limits
from hookwall.policy.model import Action, DnsSettings, PortSet, Rule, TlsMode
from hookwall.redirects.settings import check_redirects
from hookwall.retries.settings import check_retries
from hookwall.signing.settings import check_signing

__all__ = [
    "BUILTIN_DENY_SETS",
    "BUILTIN_PORTS",
    "SUPPORTED_VERSION",
    "DefaultsSpec",
    "FileSpec",
    "HostSpec",
    "NamedSets",
    "check_file",
]

SUPPORTED_VERSION = 1
# The deny sets every policy starts from; dropping them needs 'unsafe: true'.
BUILTIN_DENY_SETS: tuple[str, ...] = ("special-purpose",)
BUILTIN_PORTS = PortSet.of(80, 443)

_TOP_KEYS = (
    "version", "unsafe", "dns", "proxy", "defaults", "destinations", "logging", "senders",
    "limits",
)  # fmt: skip
_DNS_KEYS = ("servers", "timeout", "max_ttl", "cache_size")
_FLOOD_KEYS = (
    "limits",
    "timeouts",
    "max_request_body",
    "max_response_body",
    "redirects",
    "retries",
)
_DEFAULTS_KEYS = ("network", "tls", "upgrade", "ca_bundle", *_FLOOD_KEYS)
_RULE_KEYS = (
    "hosts", "name", "action", "network", "tls", "upgrade", "signing", "logging", *_FLOOD_KEYS,
    "senders", "enforce",
)  # fmt: skip
_NETWORK_KEYS = ("deny", "allow", "ports")
_TLS_MODES: tuple[TlsMode, ...] = ("intercept", "passthrough")
_ACTIONS: tuple[Action, ...] = ("allow", "deny")

# Keys that are valid elsewhere: a pointed hint beats "unknown key".
_MISPLACED = {
    ("defaults", "action"): "defaults cannot deny; add a destination with hosts: ['*'] and "
    "action: deny to deny every host not listed",
    ("defaults", "hosts"): "hosts belongs in an entry of destinations",
    ("rule", "ca_bundle"): "ca_bundle is only allowed under defaults",
    ("defaults", "signing"): "signing belongs in a destination (each receiver has its own keys)",
    ("defaults", "senders"): "senders is a top-level section; destinations[].senders scopes a rule",
}

_SET_NAME = re.compile(r"[a-z][a-z_-]*", re.IGNORECASE)
_PORT_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")
_BRACKETED = re.compile(r"\[([^\]]+)\](?::(\d+))?")


class NamedSets:
    """Expands named address sets once per load, however many files mention them."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Prefix, ...]] = {}

    def get(self, name: str) -> tuple[Prefix, ...]:
        """The prefixes of a named set; KeyError for unknown names."""
        if name not in self._cache:
            self._cache[name] = named_set(name)
        return self._cache[name]


@dataclass(slots=True)
class DefaultsSpec:
    """The ``defaults`` section as written; None means "not given, use the built-in"."""

    location: Location
    deny: tuple[Prefix, ...] | None = None
    allow: tuple[Prefix, ...] | None = None
    ports: PortSet | None = None
    tls: TlsMode | None = None
    upgrade: bool | None = None
    ca_bundle: str | None = None
    flood: FloodSpec = field(default_factory=lambda: FloodSpec())


@dataclass(slots=True)
class FloodSpec:
    """limits/timeouts/body caps as written (field-wise overrides)."""

    limits: Override = ()
    timeouts: Override = ()
    max_request_body: int | None = None
    max_response_body: int | None = None
    redirects: Override = ()
    retries: Override = ()


@dataclass(slots=True)
class HostSpec:
    """One canonical host pattern and where it was written, for duplicate messages."""

    pattern: str
    location: Location
    path: str
    rule_name: str
    senders: tuple[str, ...] = ()  # the rule's sender scope: a pattern is unique per scope


@dataclass(slots=True)
class FileSpec:
    """Everything one file contributes to a policy."""

    file: str
    unsafe: bool = False
    dns: tuple[DnsSettings, Location] | None = None
    proxy: tuple[ProxySettings, Location] | None = None
    logging: tuple[LoggingSettings, Location] | None = None
    shared_limits: tuple[SharedLimits, Location] | None = None  # top-level limits: (backend)
    defaults: DefaultsSpec | None = None
    rules: list[Rule] = field(default_factory=list)
    hosts: list[HostSpec] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)
    senders_none: Location | None = None  # ``senders: none``: no credentials, on purpose
    sender_refs: list[SenderRef] = field(default_factory=list)  # names used by destinations
    # Where each allow row was written (location, path): coverage errors point at rows.
    allow_rows: dict[Prefix, tuple[Location, str]] = field(default_factory=dict)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _FileChecker:
    """Walks one file's tree; methods return a value or None after recording an issue."""

    def __init__(self, file: str, issues: list[PolicyIssue], sets: NamedSets) -> None:
        self.file = file
        self.base_dir = Path(file).parent
        self.issues = issues
        self.sets = sets
        self.allow_rows: dict[Prefix, tuple[Location, str]] = {}

    def issue(self, location: Location, message: str) -> None:
        self.issues.append(PolicyIssue(location, message))

    def expected(self, node: YNode, path: str, what: str, hint: str = "") -> None:
        suffix = f"; {hint}" if hint else ""
        self.issue(node.location, f"{path}: expected {what}; got {describe(node)}{suffix}")

    # -- generic shapes ---------------------------------------------------------------

    def keys(self, mapping: YMap, path: str, known: Sequence[str], section: str) -> None:
        for key, entry in mapping.entries.items():
            if key in known:
                continue
            where = _join(path, key)
            misplaced = _MISPLACED.get((section, key))
            if misplaced is not None:
                self.issue(entry.key_location, f"{where}: {misplaced}")
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            self.issue(entry.key_location, f"{where}: unknown key {key!r}; {hint}")

    def mapping(self, node: YNode, path: str, what: str = "a mapping") -> YMap | None:
        """A mapping, or None for null (an empty section whose contents are commented out)."""
        if isinstance(node, YMap):
            return node
        if not (isinstance(node, YScalar) and node.value is None):
            self.expected(node, path, what)
        return None

    def items(self, node: YNode, path: str, what: str, hint: str) -> list[YNode] | None:
        if isinstance(node, YList):
            return node.items
        self.expected(node, path, what, hint)
        return None

    def string(self, node: YNode, path: str, what: str = "a string") -> str | None:
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return node.value
        self.expected(node, path, what)
        return None

    def boolean(self, node: YNode, path: str) -> bool | None:
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        self.expected(node, path, "true or false")
        return None

    def choice[C: str](self, node: YNode, path: str, choices: tuple[C, ...]) -> C | None:
        if isinstance(node, YScalar) and node.value in choices:
            return node.value
        self.expected(node, path, f"one of {', '.join(choices)}")
        return None

    # -- top level --------------------------------------------------------------------

    def check(self, root: YNode) -> FileSpec:
        spec = FileSpec(self.file, allow_rows=self.allow_rows)
        if not isinstance(root, YMap):
            self.issue(
                root.location,
                f"a policy must be a mapping with 'version: 1' at the top; got {describe(root)}",
            )
            return spec
        if not self.version(root):
            return spec
        self.keys(root, "", _TOP_KEYS, "top")
        entries = root.entries
        if "unsafe" in entries:
            spec.unsafe = bool(self.boolean(entries["unsafe"].value, "unsafe"))
        if "dns" in entries:
            spec.dns = self.dns(entries["dns"])
        if "proxy" in entries:
            proxy = check_proxy(self, entries["proxy"].value)
            spec.proxy = (proxy, entries["proxy"].key_location) if proxy else None
        if "logging" in entries:
            logging = check_logging(self, entries["logging"].value)
            spec.logging = (logging, entries["logging"].key_location) if logging else None
        if "limits" in entries:
            shared = check_shared_limits(self, entries["limits"].value)
            spec.shared_limits = (shared, entries["limits"].key_location) if shared else None
        if "defaults" in entries:
            spec.defaults = self.defaults(entries["defaults"])
            if spec.defaults is not None:
                self.check_unsafe(entries["defaults"].value, spec.unsafe)
        if "senders" in entries:
            node = entries["senders"].value
            if isinstance(node, YScalar) and node.value == "none":
                spec.senders_none = node.location
            else:
                spec.senders = check_senders(self, node)
        if "destinations" in entries:
            self.destinations(entries["destinations"].value, spec)
        return spec

    def version(self, root: YMap) -> bool:
        """False when the rest of the file is in a format we cannot judge."""
        entry = root.entries.get("version")
        if entry is None:
            self.issue(root.location, "version: missing; add 'version: 1' as the first line")
            return True
        node = entry.value
        if not (isinstance(node, YScalar) and _is_int(node.value)):
            self.expected(node, "version", "the number 1", "write 'version: 1'")
            return True
        if node.value != SUPPORTED_VERSION:
            self.issue(
                node.location,
                f"version: unsupported policy version {node.value}; this hookwall reads "
                f"version {SUPPORTED_VERSION}",
            )
            return False
        return True

    def check_unsafe(self, node: YNode, unsafe: bool) -> None:
        """Dropping the built-in deny sets must be explicit: it exposes internal services."""
        network = node.entries.get("network") if isinstance(node, YMap) else None
        deny = (
            network.value.entries.get("deny")
            if network and isinstance(network.value, YMap)
            else None
        )
        if deny is None or unsafe or not isinstance(deny.value, YList):
            return
        written = {item.value for item in deny.value.items if isinstance(item, YScalar)}
        missing = [name for name in BUILTIN_DENY_SETS if name not in written]
        if missing:
            self.issue(
                deny.value.location,
                f"defaults.network.deny: does not include {', '.join(missing)}, which keeps "
                "webhooks away from loopback, private and link-local addresses; add it back "
                "and use 'allow' for exceptions, or set 'unsafe: true' at the top of the file "
                "if you really mean it",
            )

    # -- dns --------------------------------------------------------------------------

    def dns(self, entry: YEntry) -> tuple[DnsSettings, Location] | None:
        node = self.mapping(entry.value, "dns")
        if node is None:
            return None
        self.keys(node, "dns", _DNS_KEYS, "dns")
        defaults = DnsSettings()
        servers = defaults.servers
        timeout, max_ttl, cache_size = defaults.timeout, defaults.max_ttl, defaults.cache_size
        entries = node.entries
        if "servers" in entries:
            servers = self.servers(entries["servers"].value)
        if "timeout" in entries:
            timeout = self.duration(entries["timeout"].value, "dns.timeout", positive=True)
        if "max_ttl" in entries:
            max_ttl = self.duration(entries["max_ttl"].value, "dns.max_ttl", positive=False)
        if "cache_size" in entries:
            size_node = entries["cache_size"].value
            if isinstance(size_node, YScalar) and _is_int(size_node.value):
                cache_size = cast(int, size_node.value)
                if cache_size < 0:
                    self.issue(size_node.location, "dns.cache_size: must be 0 or more entries")
            else:
                self.expected(size_node, "dns.cache_size", "a number of entries")
        settings = DnsSettings(servers, timeout, max_ttl, cache_size)
        return settings, entry.key_location

    def servers(self, node: YNode) -> tuple[tuple[str, int], ...]:
        items = self.items(node, "dns.servers", "a list", 'write servers: ["1.1.1.1"]')
        result: list[tuple[str, int]] = []
        for index, item in enumerate(items or []):
            path = f"dns.servers[{index}]"
            text = self.string(item, path, "a resolver address like '1.1.1.1' or '[::1]:53'")
            if text is None:
                continue
            try:
                result.append(parse_server(text))
            except ValueError as exc:
                self.issue(item.location, f"{path}: {exc}")
        return tuple(result)

    def duration(self, node: YNode, path: str, *, positive: bool) -> float:
        value = node.value if isinstance(node, YScalar) else None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.expected(node, path, "a duration like '2s' or '500ms'")
            return 0.0
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.issue(node.location, f"{path}: {exc}")
            return 0.0
        if positive and seconds <= 0:
            self.issue(node.location, f"{path}: must be longer than 0s")
        return seconds

    # -- defaults and rules -----------------------------------------------------------

    def defaults(self, entry: YEntry) -> DefaultsSpec | None:
        mapping = self.mapping(entry.value, "defaults")
        if mapping is None:
            return None
        self.keys(mapping, "defaults", _DEFAULTS_KEYS, "defaults")
        spec = DefaultsSpec(entry.key_location)
        entries = mapping.entries
        if "network" in entries:
            deny, allow, ports = self.network(entries["network"].value, "defaults.network")
            spec.deny, spec.allow, spec.ports = deny, allow, ports
        if "tls" in entries:
            spec.tls = self.choice(entries["tls"].value, "defaults.tls", _TLS_MODES)
        if "upgrade" in entries:
            spec.upgrade = self.boolean(entries["upgrade"].value, "defaults.upgrade")
        if "ca_bundle" in entries:
            spec.ca_bundle = self.ca_bundle(entries["ca_bundle"].value)
        spec.flood = self.flood(mapping, "defaults")
        return spec

    def flood(self, mapping: YMap, path: str) -> FloodSpec:
        """The flood-control keys of a defaults or destination mapping."""
        entries, flood = mapping.entries, FloodSpec()
        if "limits" in entries:
            flood.limits = check_limits(self, entries["limits"].value, _join(path, "limits"))
        if "timeouts" in entries:
            where = _join(path, "timeouts")
            flood.timeouts = check_timeouts(self, entries["timeouts"].value, where)
        for key in ("max_request_body", "max_response_body"):
            if key in entries:
                setattr(flood, key, check_size(self, entries[key].value, _join(path, key)))
        if "redirects" in entries:
            where = _join(path, "redirects")
            flood.redirects = check_redirects(self, entries["redirects"].value, where)
        if "retries" in entries:
            where = _join(path, "retries")
            flood.retries = check_retries(self, entries["retries"].value, where)
        return flood

    def ca_bundle(self, node: YNode) -> str | None:
        if isinstance(node, YScalar) and node.value is None:
            return None
        text = self.string(node, "defaults.ca_bundle", "a path to a PEM file")
        if text is None:
            return None
        path = self.base_dir / text
        if not path.is_file():
            self.issue(
                node.location,
                f"defaults.ca_bundle: file not found: {os.path.abspath(path)} (a relative path "
                "is resolved against the policy file's directory)",
            )
            return None
        return os.path.abspath(path)

    def network(
        self, node: YNode, path: str
    ) -> tuple[tuple[Prefix, ...] | None, tuple[Prefix, ...] | None, PortSet | None]:
        mapping = self.mapping(node, path)
        if mapping is None:
            return None, None, None
        self.keys(mapping, path, _NETWORK_KEYS, "network")
        entries = mapping.entries
        deny = allow = None
        ports = None
        if "deny" in entries:
            deny = self.prefixes(entries["deny"].value, _join(path, "deny"), "deny")
        if "allow" in entries:
            allow = self.prefixes(entries["allow"].value, _join(path, "allow"), "allow")
        if "ports" in entries:
            ports = self.ports(entries["ports"].value, _join(path, "ports"))
        return deny, allow, ports

    def prefixes(
        self, node: YNode, path: str, kind: Literal["deny", "allow"]
    ) -> tuple[Prefix, ...]:
        example = "[special-purpose, 192.0.2.0/24]" if kind == "deny" else "[10.1.0.0/16]"
        items = self.items(node, path, "a list", f"write {kind}: {example}")
        result: list[Prefix] = []
        for index, item in enumerate(items or []):
            item_path = f"{path}[{index}]"
            text = self.string(item, item_path, "a CIDR like '10.0.0.0/8'")
            if text is not None:
                result.extend(self.prefix(text, item, item_path, kind))
        return tuple(result)

    def prefix(
        self, text: str, node: YNode, path: str, kind: Literal["deny", "allow"]
    ) -> tuple[Prefix, ...]:
        if text in NAMED_SETS:
            if kind == "allow":
                self.issue(
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
                self.issue(node.location, f"{path}: unknown named set {text!r}; {hint}")
            else:
                self.issue(node.location, f"{path}: {exc}")
            return ()
        try:
            # Embedded IPv4 is judged as IPv4 at runtime, so the row is too.
            row = canonical_prefix(parsed)
        except ValueError as exc:
            self.issue(node.location, f"{path}: {exc}")
            return ()
        if kind == "allow":
            self.allow_rows[row] = (node.location, path)
        return (row,)

    def ports(self, node: YNode, path: str) -> PortSet | None:
        items = self.items(node, path, "a list of ports", "write ports: [443, '8000-8999']")
        if items is None:
            return None
        if not items:
            self.issue(
                node.location,
                f"{path}: empty list; list at least one port (use action: deny to block a "
                "destination)",
            )
            return None
        ranges: list[tuple[int, int]] = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            parsed = self.port_item(item, item_path)
            if parsed is not None:
                ranges.append(parsed)
        return PortSet(tuple(ranges)) if len(ranges) == len(items) else None

    def port_item(self, node: YNode, path: str) -> tuple[int, int] | None:
        value = node.value if isinstance(node, YScalar) else None
        if _is_int(value):
            low = high = cast(int, value)
        elif isinstance(value, str) and (match := _PORT_RANGE.fullmatch(value)):
            low = int(match[1])
            high = int(match[2]) if match[2] else low
        else:
            self.expected(node, path, "a port 1-65535 or a range like '8000-8999'")
            return None
        for port in (low, high):
            if not 1 <= port <= 65535:
                self.issue(node.location, f"{path}: port {port} is out of range; use 1-65535")
                return None
        if low > high:
            self.issue(node.location, f"{path}: range {value!r} is backwards; write '{high}-{low}'")
            return None
        return low, high

    def destinations(self, node: YNode, spec: FileSpec) -> None:
        if isinstance(node, YScalar) and node.value is None:
            return
        hint = "write destinations: [{hosts: [...]}] or a '- hosts: [...]' list"
        items = self.items(node, "destinations", "a list", hint)
        for index, item in enumerate(items or []):
            self.rule(item, f"destinations[{index}]", spec)

    def rule(self, node: YNode, path: str, spec: FileSpec) -> None:
        if not isinstance(node, YMap):
            self.expected(node, path, "a mapping with hosts: [...]")
            return
        self.keys(node, path, _RULE_KEYS, "rule")
        entries = node.entries
        hosts = self.hosts(node, path)
        name: str | None = None
        if "name" in entries:
            name = self.string(entries["name"].value, _join(path, "name"))
            if name is not None and not name.strip():
                self.issue(entries["name"].value.location, f"{_join(path, 'name')}: is empty")
        if not name:
            name = hosts[0][0] if hosts else path
        action: Action = "allow"
        if "action" in entries:
            action = self.choice(entries["action"].value, _join(path, "action"), _ACTIONS) or action
        deny = allow = None
        ports = None
        if "network" in entries:
            deny, allow, ports = self.network(entries["network"].value, _join(path, "network"))
        tls = None
        if "tls" in entries:
            tls = self.choice(entries["tls"].value, _join(path, "tls"), _TLS_MODES)
        upgrade = None
        if "upgrade" in entries:
            upgrade = self.boolean(entries["upgrade"].value, _join(path, "upgrade"))
        signing = None
        if "signing" in entries:
            signing = check_signing(self, entries["signing"].value, _join(path, "signing"))
        scope: tuple[str, ...] = ()
        if "senders" in entries:
            where = _join(path, "senders")
            scope = check_rule_senders(self, entries["senders"].value, where, spec.sender_refs)
            if scope and "name" not in entries and hosts:
                name = f"{hosts[0][0]} [{', '.join(scope)}]"
        enforce = None
        if "enforce" in entries:
            enforce = self.boolean(entries["enforce"].value, _join(path, "enforce"))
        flood = self.flood(node, path)
        rule = Rule(
            name=name,
            hosts=tuple(pattern for pattern, _, _ in hosts),
            action=action,
            location=node.location,
            deny=deny or (),
            allow=allow or (),
            ports=ports,
            tls=tls,
            upgrade=upgrade,
            signing=signing,
            senders=scope,
            enforce=enforce is not False,
            limits=flood.limits,
            timeouts=flood.timeouts,
            max_request_body=flood.max_request_body,
            max_response_body=flood.max_response_body,
            redirects=flood.redirects,
            retries=flood.retries,
            logging=check_rule_logging(self, entries["logging"].value, _join(path, "logging"))
            if "logging" in entries
            else (),
        )
        spec.rules.append(rule)
        spec.hosts.extend(HostSpec(p, loc, hpath, name, scope) for p, loc, hpath in hosts)

    def hosts(self, rule: YMap, path: str) -> list[tuple[str, Location, str]]:
        entry = rule.entries.get("hosts")
        hosts_path = _join(path, "hosts")
        if entry is None:
            self.issue(
                rule.location, f"{path}: missing 'hosts'; list the host patterns it applies to"
            )
            return []
        hint = 'write hosts: ["hooks.example.com"]'
        items = self.items(entry.value, hosts_path, "a list of host patterns", hint)
        if items is None:
            return []
        if not items:
            self.issue(
                entry.value.location,
                f"{hosts_path}: empty list; list at least one host pattern",
            )
        result: list[tuple[str, Location, str]] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            item_path = f"{hosts_path}[{index}]"
            text = self.string(item, item_path, "a host pattern like 'hooks.example.com'")
            if text is None:
                continue
            try:
                pattern = canonical_pattern(text)
            except ValueError as exc:
                self.issue(item.location, f"{item_path}: {exc}")
                continue
            if pattern in seen:
                self.issue(
                    item.location,
                    f"{item_path}: host pattern {pattern!r} is already listed as "
                    f"{hosts_path}[{seen[pattern]}]; remove one",
                )
                continue
            seen[pattern] = index
            result.append((pattern, item.location, item_path))
        return result


def check_file(root: YNode, file: str, issues: list[PolicyIssue], sets: NamedSets) -> FileSpec:
    """Validate one parsed file; issues are appended, the spec is best-effort."""
    return _FileChecker(file, issues, sets).check(root)
