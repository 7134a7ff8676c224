"""Loading a policy from a file or a directory of files into one ``Policy``.

Files are validated one by one (``schema``), then combined here, where the checks that
span files live: one ``defaults``, one ``dns``, each host pattern in one destination.
"""

from __future__ import annotations

import os
from dataclasses import replace
from importlib import resources
from pathlib import Path

from hookwall.access.settings import SenderRef, SenderTable, combine_senders
from hookwall.bounds.settings import DEFAULT_MAX_BODY, ProxySettings, Timeouts
from hookwall.config.errors import Location, PolicyError, PolicyIssue
from hookwall.config.overrides import apply
from hookwall.config.yamltree import ReadBudget, load_yaml_file
from hookwall.deliveries.settings import LoggingSettings
from hookwall.destinations.addresses import Prefix
from hookwall.destinations.reopen import check_reopened
from hookwall.destinations.settings import (
    BUILTIN_DENY_SETS,
    BUILTIN_PORTS,
    DnsSettings,
    NamedSets,
    NetworkSettings,
)
from hookwall.limits.settings import Limits, merge_limits
from hookwall.policy.model import Policy, Rule, Settings
from hookwall.policy.schema import check_file
from hookwall.policy.spec import DefaultsSpec, FileSpec, HostSpec
from hookwall.redirects.settings import RedirectSettings
from hookwall.retries.settings import RetrySettings

__all__ = ["default_policy_path", "load_default_policy", "load_policy"]

_SUFFIXES = (".yaml", ".yml")


def default_policy_path() -> Path:
    """The packaged default policy (also linked as policies/default.yaml in the repo)."""
    resource = resources.files("hookwall").joinpath("policies", "default.yaml")
    return resource if isinstance(resource, Path) else Path(str(resource))


def load_default_policy() -> Policy:
    """The built-in policy used when the operator gives none."""
    return load_policy(default_policy_path())


def _policy_files(path: Path, issues: list[PolicyIssue]) -> list[Path]:
    """The file itself, or a directory's *.yaml/*.yml files sorted by name (no recursion).

    Hidden files are skipped: editors leave '.#name.yaml' lock files next to real ones.
    """
    try:
        is_dir = path.is_dir()
        if not is_dir:
            path.stat()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        issues.append(
            PolicyIssue(
                None,
                f"{path}: cannot open policy: {reason}; pass a policy file or a directory "
                "of *.yaml files",
            )
        )
        return []
    if not is_dir:
        return [path]
    try:
        names = sorted(entry.name for entry in os.scandir(path))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        issues.append(PolicyIssue(None, f"{path}: cannot read policy directory: {reason}"))
        return []
    files = [
        path / name
        for name in names
        if name.endswith(_SUFFIXES) and not name.startswith(".") and (path / name).is_file()
    ]
    if not files:
        issues.append(
            PolicyIssue(
                None,
                f"{path}: directory has no *.yaml or *.yml policy files; add one "
                "(copy policies/default.yaml to start)",
            )
        )
    return files


def _one_section(found: list[Location], section: str, issues: list[PolicyIssue]) -> None:
    """A section may be defined by one file of a directory only; name both places."""
    for location in found[1:]:
        first = found[0]
        issues.append(
            PolicyIssue(
                location,
                f"{section}: already defined in {first}; define {section} in one file only",
            )
        )


def _defaults_settings(spec: DefaultsSpec | None, sets: NamedSets) -> Settings:
    """Built-in defaults overlaid with what the file wrote."""
    spec = spec or DefaultsSpec(Location("<built-in>", 1, 1))
    if spec.deny is None:
        deny = tuple(prefix for name in BUILTIN_DENY_SETS for prefix in sets.get(name))
    else:
        deny = spec.deny
    network = NetworkSettings(
        deny=deny,
        allow=spec.allow if spec.allow is not None else (),
        ports=spec.ports if spec.ports is not None else BUILTIN_PORTS,
    )
    flood = spec.flood
    return Settings(
        rule=None,
        action="allow",
        network=network,
        tls=spec.tls or "intercept",
        connect_refusals=spec.connect_refusals or "inside-tls",
        upgrade=bool(spec.upgrade),
        limits=merge_limits(Limits(), flood.limits),
        timeouts=apply(Timeouts(), flood.timeouts),
        max_request_body=flood.max_request_body or DEFAULT_MAX_BODY,
        max_response_body=flood.max_response_body or DEFAULT_MAX_BODY,
        redirects=apply(RedirectSettings(), flood.redirects),
        retries=apply(RetrySettings(), flood.retries),
    )


def _with_logging(defaults: Settings, logging: LoggingSettings) -> Settings:
    """The defaults' settings with the top-level capture settings (destinations merge on)."""
    return replace(defaults, logging=logging.destination)


def _relabel_rule(rule: Rule, labels: dict[Prefix, Prefix]) -> Rule:
    """The rule with its reopening allow rows relabelled (see ``check_reopened``)."""
    if not any(prefix in labels for prefix in rule.allow):
        return rule
    return replace(rule, allow=tuple(labels.get(prefix, prefix) for prefix in rule.allow))


def _check_hosts(specs: list[FileSpec], issues: list[PolicyIssue]) -> None:
    """Each canonical pattern may belong to one destination, across all files."""
    first: dict[tuple[str, str | None], HostSpec] = {}
    for spec in specs:
        for host in spec.hosts:
            # One unscoped destination per pattern, and one per sender (senders: [...]).
            for sender in host.senders or (None,):
                previous = first.setdefault((host.pattern, sender), host)
                if previous is host:
                    continue
                scope = f" for sender {sender!r}" if sender else ""
                issues.append(
                    PolicyIssue(
                        host.location,
                        f"{host.path}: host pattern {host.pattern!r}{scope} is already used by "
                        f"destination {previous.rule_name!r} at {previous.location}; each host "
                        "pattern may appear in one destination only"
                        + (" per sender" if sender else " (plus sender-scoped ones)"),
                    )
                )
                break


def _check_senders_none(
    stated: list[Location], senders: SenderTable, issues: list[PolicyIssue]
) -> None:
    """``senders: none`` says "no credentials"; it cannot stand next to defined senders."""
    first = next(iter(senders), None)
    for location in stated:
        if first is not None:
            issues.append(
                PolicyIssue(
                    location,
                    f"senders: none says no sender authenticates, but sender {first.name!r} is "
                    f"defined at {first.location}; remove one of the two",
                )
            )
            return


def _sender_refs(specs: list[FileSpec]) -> list[SenderRef]:
    return [ref for spec in specs for ref in spec.sender_refs]


def _check_signing_sees_bodies(
    specs: list[FileSpec], defaults: DefaultsSpec | None, issues: list[PolicyIssue]
) -> None:
    """Signing needs the request bytes; a passthrough tunnel never shows them."""
    for spec in specs:
        for rule in spec.rules:
            if rule.signing is None:
                continue
            tls = rule.tls or (defaults.tls if defaults else None) or "intercept"
            if tls != "passthrough":
                continue
            where = (
                "this destination" if rule.tls else f"defaults at {defaults and defaults.location}"
            )
            issues.append(
                PolicyIssue(
                    rule.signing.location,
                    f"destination {rule.name!r}: signing needs to see each request, but tls is "
                    f"passthrough ({where}); use tls: intercept (or upgrade: true for senders "
                    "that send http://)",
                )
            )


def _in_file_order(issues: list[PolicyIssue], files: list[Path]) -> list[PolicyIssue]:
    """Issues as an editor would walk them: file by file, top to bottom."""
    order = {str(file): index for index, file in enumerate(files)}

    def key(issue: PolicyIssue) -> tuple[int, int, int]:
        where = issue.location
        if where is None:
            return (-1, 0, 0)
        return (order.get(where.file, len(order)), where.line, where.column)

    return sorted(issues, key=key)


def load_policy(path: str | os.PathLike[str], *, read_secrets: bool = True) -> Policy:
    """Load and validate a policy file or directory; PolicyError lists every problem.

    ``read_secrets=False`` checks secret references for their shape and puts random stand-ins
    in place of the values (``hookwall check --no-secrets``): the policy says so in
    ``secrets_read``, and no part of the proxy accepts it."""
    root = Path(path)
    issues: list[PolicyIssue] = []
    sets = NamedSets()
    specs: list[FileSpec] = []
    files = _policy_files(root, issues)
    budget = ReadBudget()
    for file in files:
        if budget.spent:
            break  # the file that crossed MAX_POLICY_BYTES said so
        tree = load_yaml_file(file, str(file), issues, budget)
        if tree is not None:
            specs.append(check_file(tree, str(file), issues, sets, read_secrets=read_secrets))

    _one_section([s.defaults.location for s in specs if s.defaults], "defaults", issues)
    _one_section([s.dns[1] for s in specs if s.dns], "dns", issues)
    _one_section([s.proxy[1] for s in specs if s.proxy], "proxy", issues)
    _one_section([s.logging[1] for s in specs if s.logging], "logging", issues)
    _one_section([s.shared_limits[1] for s in specs if s.shared_limits], "limits", issues)
    _check_hosts(specs, issues)
    senders = combine_senders((s.senders for s in specs), _sender_refs(specs), issues)
    stated_none = [s.senders_none for s in specs if s.senders_none is not None]
    _check_senders_none(stated_none, senders, issues)
    defaults_spec = next((s.defaults for s in specs if s.defaults is not None), None)
    _check_signing_sees_bodies(specs, defaults_spec, issues)
    defaults = _defaults_settings(defaults_spec, sets)
    network = defaults.network
    labels = check_reopened(specs, network.allow, network.deny, issues)
    if issues:
        raise PolicyError(_in_file_order(issues, files))
    if labels:  # say in `explain` why a reopening row is allowed to
        network = replace(network, allow=tuple(labels.get(p, p) for p in network.allow))
        defaults = replace(defaults, network=network)

    dns_settings = next((s.dns[0] for s in specs if s.dns is not None), DnsSettings())
    logging_settings = next((s.logging[0] for s in specs if s.logging), LoggingSettings())
    return Policy(
        sources=tuple(str(file) for file in files),
        dns=dns_settings,
        defaults=_with_logging(defaults, logging_settings),
        rules=tuple(_relabel_rule(rule, labels) for spec in specs for rule in spec.rules),
        ca_bundle=defaults_spec.ca_bundle if defaults_spec else None,
        unsafe=any(spec.unsafe for spec in specs),
        proxy=next((s.proxy[0] for s in specs if s.proxy is not None), ProxySettings()),
        logging=logging_settings,
        senders=senders,
        senders_none=bool(stated_none),
        shared_limits=next((s.shared_limits[0] for s in specs if s.shared_limits), None),
        secrets_read=read_secrets,
    )
