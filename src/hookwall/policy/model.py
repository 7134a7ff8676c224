"""The loaded policy: immutable values the proxy reads on every request.

Everything is frozen so a policy can be swapped atomically on reload and shared between
threads without locks; effective per-rule settings are merged once, at construction.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal

from hookwall.access.settings import PatternRules, Selection, SenderTable
from hookwall.access.settings import select as select_rule
from hookwall.config.errors import Location
from hookwall.deliveries.settings import DestinationLogging, LoggingSettings
from hookwall.destinations.addresses import AddressVerdict, IPAddress, Prefix, check_address
from hookwall.destinations.match import HostMatcher
from hookwall.limits.settings import (
    DEFAULT_MAX_BODY,
    Limits,
    Override,
    ProxySettings,
    Timeouts,
    apply,
    merge_limits,
)
from hookwall.limits.shared_settings import SharedLimits
from hookwall.redirects import RedirectSettings
from hookwall.retries.plan import RetrySettings
from hookwall.signing.keys import SigningKey
from hookwall.signing.schemes import Scheme

__all__ = [
    "Action",
    "DnsSettings",
    "NetworkSettings",
    "Policy",
    "PortSet",
    "Rule",
    "Settings",
    "SigningSettings",
    "TlsMode",
    "merge_rule",
]

_VERDICT_CACHE_SIZE = 4096
Action = Literal["allow", "deny"]
TlsMode = Literal["intercept", "passthrough"]


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


@dataclass(frozen=True, slots=True, repr=False)
class SigningSettings:
    """How a destination's requests are signed. Keys are loaded; ``references`` are what the
    policy wrote (``env:NAME``), safe to show; the key material never is."""

    scheme: Scheme
    keys: tuple[SigningKey, ...]
    references: tuple[str, ...]
    location: Location
    id_header: str | None = None
    keep_sender_signatures: bool = False

    def __repr__(self) -> str:
        ids = ", ".join(key.key_id for key in self.keys)
        return f"SigningSettings({self.scheme.name}, keys=[{ids}])"


@dataclass(frozen=True, slots=True)
class Rule:
    """One destination entry as written: ``None`` overrides mean "use the defaults".

    ``hosts`` are canonical patterns; ``deny``/``allow`` are appended to the defaults'
    lists, ``ports``/``tls``/``upgrade`` replace the defaults when set.
    """

    name: str
    hosts: tuple[str, ...]
    action: Action
    location: Location
    deny: tuple[Prefix, ...] = ()
    allow: tuple[Prefix, ...] = ()
    ports: PortSet | None = None
    tls: TlsMode | None = None
    upgrade: bool | None = None
    signing: SigningSettings | None = None
    senders: tuple[str, ...] = ()  # scoped to these senders; () = every sender
    enforce: bool = True  # False: report-only (its action: deny / sender scope is only logged)
    limits: Override = ()
    timeouts: Override = ()
    max_request_body: int | None = None
    max_response_body: int | None = None
    redirects: Override = ()
    retries: Override = ()
    logging: Override = ()  # capture_body / id_header for these hosts


@dataclass(frozen=True, slots=True)
class Settings:
    """Effective settings for one destination; ``rule`` is None when only defaults apply."""

    rule: Rule | None
    action: Action
    network: NetworkSettings
    tls: TlsMode
    upgrade: bool
    signing: SigningSettings | None = None
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_request_body: int = DEFAULT_MAX_BODY
    max_response_body: int = DEFAULT_MAX_BODY
    redirects: RedirectSettings = field(default_factory=RedirectSettings)
    retries: RetrySettings = field(default_factory=RetrySettings)
    logging: DestinationLogging = field(default_factory=DestinationLogging)


def merge_rule(defaults: Settings, rule: Rule) -> Settings:
    """Defaults plus one rule: address lists append (a rule can never drop a deny), the rest
    replace."""
    network = NetworkSettings(
        deny=defaults.network.deny + rule.deny,
        allow=defaults.network.allow + rule.allow,
        ports=defaults.network.ports if rule.ports is None else rule.ports,
    )
    return Settings(
        rule=rule,
        action=rule.action,
        network=network,
        tls=defaults.tls if rule.tls is None else rule.tls,
        upgrade=defaults.upgrade if rule.upgrade is None else rule.upgrade,
        signing=rule.signing,
        limits=merge_limits(defaults.limits, rule.limits),
        timeouts=apply(defaults.timeouts, rule.timeouts),  # type: ignore[arg-type]
        max_request_body=rule.max_request_body or defaults.max_request_body,
        max_response_body=rule.max_response_body or defaults.max_response_body,
        redirects=apply(defaults.redirects, rule.redirects),  # type: ignore[arg-type]
        retries=apply(defaults.retries, rule.retries),  # type: ignore[arg-type]
        logging=apply(defaults.logging, rule.logging),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Policy:
    """A whole loaded policy. ``settings_for`` is the only thing the request path needs."""

    sources: tuple[str, ...]
    dns: DnsSettings
    defaults: Settings
    rules: tuple[Rule, ...]
    ca_bundle: str | None
    unsafe: bool
    proxy: ProxySettings = field(default_factory=ProxySettings)
    senders: SenderTable = field(default_factory=SenderTable)  # empty: no authentication
    # ``senders: none`` was written: no authentication on purpose, not a file gone missing.
    senders_none: bool = False
    logging: LoggingSettings = field(default_factory=LoggingSettings)  # the delivery store
    # Top-level limits: where flood-control state is shared (None: in each process).
    shared_limits: SharedLimits | None = None
    _matcher: HostMatcher[PatternRules] = field(init=False, repr=False, compare=False)
    # The largest body any destination accepts: mitmproxy's buffering ceiling.
    max_body: int = field(init=False, compare=False)
    # The longest a sender's connection may go without a byte while an exchange is in progress
    # (body upload, connect, the receiver's answer): mitmproxy's inactivity backstop.
    longest_quiet: float = field(init=False, compare=False)

    def __post_init__(self) -> None:
        matcher: HostMatcher[PatternRules] = HostMatcher()
        by_pattern: dict[str, PatternRules] = {}  # an unscoped rule and sender-scoped ones
        largest = max(self.defaults.max_request_body, self.defaults.max_response_body)
        quiet = _quiet(self.defaults)
        for rule in self.rules:
            merged = merge_rule(self.defaults, rule)
            largest = max(largest, merged.max_request_body, merged.max_response_body)
            quiet = max(quiet, _quiet(merged))
            for pattern in rule.hosts:
                if pattern not in by_pattern:
                    by_pattern[pattern] = PatternRules()
                    matcher.add(pattern, by_pattern[pattern])
                by_pattern[pattern].add(merged)
        object.__setattr__(self, "_matcher", matcher)
        object.__setattr__(self, "max_body", largest)
        object.__setattr__(self, "longest_quiet", quiet)

    def settings_for(self, host: str, sender: str | None = None) -> Settings:
        """Effective settings for a canonical host (lower-case A-label name or IP text), as
        judged for ``sender``; access verdicts (``sender-denied``, report-only) come from
        ``select``."""
        return self.select(host, sender).settings

    def select(self, host: str, sender: str | None = None) -> Selection:
        """The rule for (host, sender) and the access verdicts on it (access/settings.py)."""
        candidates = self._matcher.matches(host)
        return select_rule(candidates, self.defaults, self.senders, host, sender)


def _quiet(settings: Settings) -> float:
    timeouts = settings.timeouts
    return timeouts.body + timeouts.connect + timeouts.response
