"""The loaded policy: immutable values the proxy reads on every request.

Everything is frozen so a policy can be swapped atomically on reload and shared between
threads without locks; effective per-rule settings are merged once, at construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hookwall.access.settings import SenderTable
from hookwall.bounds.settings import DEFAULT_MAX_BODY, ProxySettings, Timeouts
from hookwall.config.errors import Location
from hookwall.config.overrides import Override, apply
from hookwall.deliveries.settings import DestinationLogging, LoggingSettings
from hookwall.destinations.addresses import Prefix
from hookwall.destinations.match import HostMatcher
from hookwall.destinations.settings import (
    ConnectRefusals,
    DnsSettings,
    NetworkSettings,
    PortSet,
    TlsMode,
)
from hookwall.limits.settings import Limits, merge_limits
from hookwall.limits.shared_settings import SharedLimits
from hookwall.policy.selection import PatternRules
from hookwall.policy.selection import Selection as RuleSelection
from hookwall.policy.selection import select as select_rule
from hookwall.redirects.settings import RedirectSettings
from hookwall.retries.settings import RetrySettings
from hookwall.signing.settings import SigningSettings

__all__ = ["Action", "Policy", "Rule", "Selection", "Settings", "merge_rule"]

Action = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One destination entry as written: ``None`` overrides mean "use the defaults".

    ``hosts`` are canonical patterns; ``deny``/``allow`` are appended to the defaults'
    lists, ``ports``/``tls``/``connect_refusals``/``upgrade`` replace the defaults when set.
    """

    name: str
    hosts: tuple[str, ...]
    action: Action
    location: Location
    deny: tuple[Prefix, ...] = ()
    allow: tuple[Prefix, ...] = ()
    ports: PortSet | None = None
    tls: TlsMode | None = None
    connect_refusals: ConnectRefusals | None = None
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
    # where a CONNECT refused by the destination decision is answered (intercepted tls only)
    connect_refusals: ConnectRefusals = "inside-tls"
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_request_body: int = DEFAULT_MAX_BODY
    max_response_body: int = DEFAULT_MAX_BODY
    redirects: RedirectSettings = field(default_factory=RedirectSettings)
    retries: RetrySettings = field(default_factory=RetrySettings)
    logging: DestinationLogging = field(default_factory=DestinationLogging)


# What ``Policy.select`` answers: the selection of one destination's effective settings.
Selection = RuleSelection[Settings]


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
        connect_refusals=(
            defaults.connect_refusals if rule.connect_refusals is None else rule.connect_refusals
        ),
        upgrade=defaults.upgrade if rule.upgrade is None else rule.upgrade,
        signing=rule.signing,
        limits=merge_limits(defaults.limits, rule.limits),
        timeouts=apply(defaults.timeouts, rule.timeouts),
        max_request_body=rule.max_request_body or defaults.max_request_body,
        max_response_body=rule.max_response_body or defaults.max_response_body,
        redirects=apply(defaults.redirects, rule.redirects),
        retries=apply(defaults.retries, rule.retries),
        logging=apply(defaults.logging, rule.logging),
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
    # False: loaded by ``check --no-secrets``; its keys and tokens are random stand-ins.
    secrets_read: bool = True
    _matcher: HostMatcher[PatternRules[Settings]] = field(init=False, repr=False, compare=False)
    # The largest body any destination accepts: mitmproxy's buffering ceiling.
    max_body: int = field(init=False, compare=False)
    # The longest a sender's connection may go without a byte while an exchange is in progress
    # (body upload, connect, the receiver's answer): mitmproxy's inactivity backstop.
    longest_quiet: float = field(init=False, compare=False)

    def __post_init__(self) -> None:
        matcher: HostMatcher[PatternRules[Settings]] = HostMatcher()
        by_pattern: dict[str, PatternRules[Settings]] = {}  # an unscoped rule, scoped ones
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
        """The rule for (host, sender) and the access verdicts on it (policy/selection.py)."""
        candidates = self._matcher.matches(host)
        return select_rule(candidates, self.defaults, self.senders, host, sender)


def _quiet(settings: Settings) -> float:
    timeouts = settings.timeouts
    return timeouts.body + timeouts.connect + timeouts.response
