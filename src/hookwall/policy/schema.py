"""Validation of one policy file: Y-node tree in, a ``FileSpec`` and located issues out.

The walk only dispatches: the top-level sections go to their concern's parser (``dns`` to
destinations, ``proxy`` to bounds, ``logging`` to deliveries, ``limits`` to limits,
``senders`` to access), ``defaults`` and ``destinations`` to ``policy.rules``, which hands
each of their keys on in turn. Every check records an issue and carries on with a
placeholder, so one load reports every problem in the file. Cross-file checks (duplicates
between files) live in ``load``.
"""

from __future__ import annotations

from hookwall.access.settings import SENDERS, check_senders
from hookwall.bounds.settings import PROXY, check_proxy
from hookwall.config.checker import Checker, is_whole
from hookwall.config.errors import PolicyIssue
from hookwall.config.shapes import Const, Fields, Flag, JsonSchema, ListOf, Nullable
from hookwall.config.yamlnodes import YList, YMap, YNode, YScalar, describe
from hookwall.deliveries.settings import LOGGING, check_logging
from hookwall.destinations.settings import (
    BUILTIN_DENY_SETS,
    DNS,
    NamedSets,
    NetworkReader,
    check_dns,
)
from hookwall.limits.shared_settings import SHARED_LIMITS, check_shared_limits
from hookwall.policy.rules import DEFAULTS, DESTINATION, RulesReader
from hookwall.policy.spec import FileSpec

__all__ = ["POLICY_FILE", "SUPPORTED_VERSION", "check_file"]

SUPPORTED_VERSION = 1

# Dropping a built-in deny set needs 'unsafe: true' (``_deny_sets_kept``).
_DENY_SETS_KEPT: JsonSchema = {
    "if": {"not": {"properties": {"unsafe": {"const": True}}, "required": ["unsafe"]}},
    "then": {
        "properties": {
            "defaults": {
                "properties": {
                    "network": {
                        "properties": {
                            "deny": {
                                "allOf": [
                                    {"contains": {"const": name}} for name in BUILTIN_DENY_SETS
                                ]
                            }
                        }
                    }
                }
            }
        }
    },
}
POLICY_FILE = Fields(
    {
        "version": Const(SUPPORTED_VERSION, doc="the policy format: write 'version: 1' first"),
        "unsafe": Flag(doc="true: the built-in deny sets may be dropped from defaults"),
        "dns": DNS,
        "proxy": PROXY,
        "defaults": DEFAULTS,
        "destinations": Nullable(ListOf(DESTINATION), doc="rules per host pattern"),
        "logging": LOGGING,
        "senders": SENDERS,
        "limits": SHARED_LIMITS,
    },
    required=("version",),
    nullable=False,
    extra=_DENY_SETS_KEPT,
    doc="a hookwall policy file (a directory of them is one policy)",
)


def _version(checker: Checker, root: YMap) -> bool:
    """False when the rest of the file is in a format we cannot judge."""
    entry = root.entries.get("version")
    if entry is None:
        checker.issue(root.location, "version: missing; add 'version: 1' as the first line")
        return True
    node = entry.value
    if not (isinstance(node, YScalar) and is_whole(node.value)):
        checker.expected(node, "version", "the number 1", "write 'version: 1'")
        return True
    if node.value != SUPPORTED_VERSION:
        checker.issue(
            node.location,
            f"version: unsupported policy version {node.value}; this hookwall reads "
            f"version {SUPPORTED_VERSION}",
        )
        return False
    return True


def _deny_sets_kept(checker: Checker, defaults: YNode, unsafe: bool) -> None:
    """Dropping the built-in deny sets must be explicit: it exposes internal services (two
    sections judged together: the top-level ``unsafe`` and ``defaults.network.deny``)."""
    network = defaults.entries.get("network") if isinstance(defaults, YMap) else None
    deny = (
        network.value.entries.get("deny") if network and isinstance(network.value, YMap) else None
    )
    if deny is None or unsafe or not isinstance(deny.value, YList):
        return
    written = {item.value for item in deny.value.items if isinstance(item, YScalar)}
    missing = [name for name in BUILTIN_DENY_SETS if name not in written]
    if missing:
        checker.issue(
            deny.value.location,
            f"defaults.network.deny: does not include {', '.join(missing)}, which keeps "
            "webhooks away from loopback, private and link-local addresses; add it back "
            "and use 'allow' for exceptions, or set 'unsafe: true' at the top of the file "
            "if you really mean it",
        )


def _top_sections(checker: Checker, root: YMap, spec: FileSpec) -> None:
    """The sections that are not about destinations, each kept with where it was written."""
    entries = root.entries
    if "dns" in entries:
        dns = check_dns(checker, entries["dns"].value)
        spec.dns = (dns, entries["dns"].key_location) if dns is not None else None
    if "proxy" in entries:
        proxy = check_proxy(checker, entries["proxy"].value)
        spec.proxy = (proxy, entries["proxy"].key_location) if proxy is not None else None
    if "logging" in entries:
        logging = check_logging(checker, entries["logging"].value)
        spec.logging = (logging, entries["logging"].key_location) if logging is not None else None
    if "limits" in entries:
        shared = check_shared_limits(checker, entries["limits"].value)
        where = entries["limits"].key_location
        spec.shared_limits = (shared, where) if shared is not None else None


def check_file(
    root: YNode, file: str, issues: list[PolicyIssue], sets: NamedSets, *, read_secrets: bool = True
) -> FileSpec:
    """Validate one parsed file; issues are appended, the spec is best-effort. Secret values
    are read unless ``read_secrets`` is False (then only their references are checked)."""
    checker = Checker(file, issues, read_secrets=read_secrets)
    network = NetworkReader(checker, sets)
    spec = FileSpec(file, allow_rows=network.allow_rows)
    if not isinstance(root, YMap):
        checker.issue(
            root.location,
            f"a policy must be a mapping with 'version: 1' at the top; got {describe(root)}",
        )
        return spec
    if not _version(checker, root):
        return spec
    checker.keys(root, "", POLICY_FILE.names)
    entries = root.entries
    if "unsafe" in entries:
        spec.unsafe = bool(checker.boolean(entries["unsafe"].value, "unsafe"))
    _top_sections(checker, root, spec)
    rules = RulesReader(checker, network)
    if "defaults" in entries:
        spec.defaults = rules.defaults(entries["defaults"])
        if spec.defaults is not None:
            _deny_sets_kept(checker, entries["defaults"].value, spec.unsafe)
    if "senders" in entries:
        node = entries["senders"].value
        if isinstance(node, YScalar) and node.value == "none":
            spec.senders_none = node.location
        else:
            spec.senders = check_senders(checker, node)
    if "destinations" in entries:
        rules.destinations(entries["destinations"].value, spec)
    return spec
