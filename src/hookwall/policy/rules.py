"""The ``defaults`` section and the entries of ``destinations``: each key to its concern.

A destination entry is a composition: its hosts, network, tls and connect_refusals are the
destinations concern's, ``signing`` is signing's, ``senders`` is access's, ``limits``
limits', and so on; each value is parsed by that concern's ``settings`` and assembled here
into a ``Rule``. Only what belongs to the entry itself (``name``, ``action``, ``enforce``)
and the hints for keys written in the wrong place are read here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from hookwall.access.settings import RULE_SENDERS, check_rule_senders
from hookwall.bounds.settings import BODY_SIZE, TIMEOUTS, check_size, check_timeouts
from hookwall.config.checker import Checker, subpath
from hookwall.config.shapes import Fields, Flag, JsonSchema, Nullable, OneOf, Shape, Text
from hookwall.config.yamlnodes import YEntry, YMap, YNode, YScalar
from hookwall.deliveries.settings import RULE_LOGGING, check_rule_logging
from hookwall.destinations.settings import (
    CA_BUNDLE,
    CONNECT_REFUSALS_SHAPE,
    HOSTS,
    NETWORK,
    TLS,
    TLS_MODES,
    ConnectRefusals,
    NetworkReader,
    TlsMode,
    check_ca_bundle,
    check_connect_refusals,
    check_hosts,
)
from hookwall.limits.settings import LIMITS, check_limits
from hookwall.policy.model import Action, Rule
from hookwall.policy.spec import DefaultsSpec, FileSpec, FloodSpec, HostSpec
from hookwall.redirects.settings import REDIRECTS, check_redirects
from hookwall.retries.settings import RETRIES, check_retries
from hookwall.signing.settings import SIGNING, check_signing

__all__ = ["DEFAULTS", "DESTINATION", "RulesReader"]

_ACTIONS: tuple[Action, ...] = ("allow", "deny")

_FLOOD: dict[str, Shape] = {
    "limits": LIMITS,
    "timeouts": TIMEOUTS,
    "max_request_body": BODY_SIZE,
    "max_response_body": BODY_SIZE,
    "redirects": REDIRECTS,
    "retries": RETRIES,
}
# tls: passthrough beside connect_refusals: inside-tls is refused (``_connect_refusals``).
_PASSTHROUGH_ANSWERS_ON_CONNECT: JsonSchema = {
    "if": {"properties": {"tls": {"const": "passthrough"}}, "required": ["tls"]},
    "then": {"properties": {"connect_refusals": {"not": {"const": "inside-tls"}}}},
}
DEFAULTS = Fields(
    {
        "network": NETWORK,
        "tls": TLS,
        "connect_refusals": CONNECT_REFUSALS_SHAPE,
        "upgrade": Flag(doc="deliver http:// webhooks over https"),
        "ca_bundle": CA_BUNDLE,
        **_FLOOD,
    },
    extra=_PASSTHROUGH_ANSWERS_ON_CONNECT,
    doc="what every destination gets unless its entry says otherwise",
)
DESTINATION = Fields(
    {
        "hosts": HOSTS,
        "name": Text("a name", r"\S", doc="shown in logs and hookwall check (default: a host)"),
        "action": OneOf(_ACTIONS, doc="allow (default) or deny these hosts"),
        "network": NETWORK,
        "tls": TLS,
        "connect_refusals": CONNECT_REFUSALS_SHAPE,
        "upgrade": Flag(doc="deliver http:// webhooks over https"),
        "signing": Nullable(SIGNING),
        "logging": RULE_LOGGING,
        **_FLOOD,
        "senders": RULE_SENDERS,
        "enforce": Flag(doc="false: report-only (refusals are logged, not answered)"),
    },
    required=("hosts",),
    nullable=False,
    extra=_PASSTHROUGH_ANSWERS_ON_CONNECT,
    doc="a rule for some hosts; the most specific host pattern wins",
)

# Keys that are valid elsewhere: a pointed hint beats "unknown key".
_DEFAULTS_MISPLACED = {
    "action": "defaults cannot deny; add a destination with hosts: ['*'] and action: deny to "
    "deny every host not listed",
    "hosts": "hosts belongs in an entry of destinations",
    "signing": "signing belongs in a destination (each receiver has its own keys)",
    "senders": "senders is a top-level section; destinations[].senders scopes a rule",
}
_RULE_MISPLACED = {"ca_bundle": "ca_bundle is only allowed under defaults"}


def _read[T](
    entries: dict[str, YEntry], path: str, key: str, parse: Callable[[YNode, str], T | None]
) -> T | None:
    """``parse`` of ``entries[key]`` at ``path.key``; None when the key is not written."""
    entry = entries.get(key)
    return None if entry is None else parse(entry.value, subpath(path, key))


class RulesReader:
    """Reads the ``defaults`` and ``destinations`` of one file."""

    def __init__(self, checker: Checker, network: NetworkReader) -> None:
        self.checker = checker
        self.network = network

    def _choice[C: str](self, choices: tuple[C, ...]) -> Callable[[YNode, str], C | None]:
        def read(node: YNode, path: str) -> C | None:
            return self.checker.choice(node, path, choices)

        return read

    def defaults(self, entry: YEntry) -> DefaultsSpec | None:
        checker = self.checker
        mapping = checker.mapping(entry.value, "defaults")
        if mapping is None:
            return None
        checker.keys(mapping, "defaults", DEFAULTS.names, _DEFAULTS_MISPLACED)
        spec = DefaultsSpec(entry.key_location)
        entries = mapping.entries
        if "network" in entries:
            deny, allow, ports = self.network.network(entries["network"].value, "defaults.network")
            spec.deny, spec.allow, spec.ports = deny, allow, ports
        spec.tls = _read(entries, "defaults", "tls", self._choice(TLS_MODES))
        spec.connect_refusals = self._connect_refusals(entries, "defaults", spec.tls)
        spec.upgrade = _read(entries, "defaults", "upgrade", checker.boolean)
        if "ca_bundle" in entries:
            spec.ca_bundle = check_ca_bundle(checker, entries["ca_bundle"].value)
        spec.flood = self.flood(mapping, "defaults")
        return spec

    def flood(self, mapping: YMap, path: str) -> FloodSpec:
        """The flood-control keys of a defaults or destination mapping."""
        checker, entries = self.checker, mapping.entries
        return FloodSpec(
            limits=_read(entries, path, "limits", partial(check_limits, checker)) or (),
            timeouts=_read(entries, path, "timeouts", partial(check_timeouts, checker)) or (),
            max_request_body=_read(entries, path, "max_request_body", partial(check_size, checker)),
            max_response_body=_read(
                entries, path, "max_response_body", partial(check_size, checker)
            ),
            redirects=_read(entries, path, "redirects", partial(check_redirects, checker)) or (),
            retries=_read(entries, path, "retries", partial(check_retries, checker)) or (),
        )

    def destinations(self, node: YNode, spec: FileSpec) -> None:
        """Each entry of ``destinations``: its rule, its host patterns and the senders it
        names go to ``spec``."""
        if isinstance(node, YScalar) and node.value is None:
            return
        hint = "write destinations: [{hosts: [...]}] or a '- hosts: [...]' list"
        items = self.checker.items(node, "destinations", "a list", hint)
        for index, item in enumerate(items or []):
            self.rule(item, f"destinations[{index}]", spec)

    def rule(self, node: YNode, path: str, spec: FileSpec) -> None:
        checker = self.checker
        if not isinstance(node, YMap):
            checker.expected(node, path, "a mapping with hosts: [...]")
            return
        checker.keys(node, path, DESTINATION.names, _RULE_MISPLACED)
        entries = node.entries
        hosts = check_hosts(checker, node, path)
        name = self._name(entries, path) or (hosts[0][0] if hosts else path)
        action: Action = _read(entries, path, "action", self._choice(_ACTIONS)) or "allow"
        deny = allow = ports = None
        if "network" in entries:
            where = subpath(path, "network")
            deny, allow, ports = self.network.network(entries["network"].value, where)
        tls: TlsMode | None = _read(entries, path, "tls", self._choice(TLS_MODES))
        connect_refusals = self._connect_refusals(entries, path, tls)
        upgrade = _read(entries, path, "upgrade", checker.boolean)
        signing = _read(entries, path, "signing", partial(check_signing, checker))
        scope: tuple[str, ...] = ()
        if "senders" in entries:
            where = subpath(path, "senders")
            scope = check_rule_senders(checker, entries["senders"].value, where, spec.sender_refs)
            if scope and "name" not in entries and hosts:
                name = f"{hosts[0][0]} [{', '.join(scope)}]"
        enforce = _read(entries, path, "enforce", checker.boolean)
        flood = self.flood(node, path)
        logging = _read(entries, path, "logging", partial(check_rule_logging, checker))
        spec.rules.append(
            Rule(
                name=name,
                hosts=tuple(pattern for pattern, _, _ in hosts),
                action=action,
                location=node.location,
                deny=deny or (),
                allow=allow or (),
                ports=ports,
                tls=tls,
                connect_refusals=connect_refusals,
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
                logging=logging or (),
            )
        )
        spec.hosts.extend(HostSpec(p, loc, hpath, name, scope) for p, loc, hpath in hosts)

    def _connect_refusals(
        self, entries: dict[str, YEntry], path: str, tls: TlsMode | None
    ) -> ConnectRefusals | None:
        """``connect_refusals`` as written. Asking for ``inside-tls`` where the same mapping
        says ``tls: passthrough`` is refused: hookwall has no certificate of its own there to
        answer with (merged from the defaults, passthrough simply wins)."""
        read = partial(check_connect_refusals, self.checker)
        value: ConnectRefusals | None = _read(entries, path, "connect_refusals", read)
        if value == "inside-tls" and tls == "passthrough":
            where = subpath(path, "connect_refusals")
            self.checker.issue(
                entries["connect_refusals"].value.location,
                f"{where}: inside-tls needs tls: intercept, but this entry says tls: "
                "passthrough (hookwall never holds a certificate for a passthrough destination, "
                "so its refusals are always answered on the CONNECT); remove connect_refusals "
                "or use tls: intercept",
            )
            return None
        return value

    def _name(self, entries: dict[str, YEntry], path: str) -> str | None:
        """The ``name`` as written; an empty one is an issue (and the default is used)."""
        entry = entries.get("name")
        if entry is None:
            return None
        where = subpath(path, "name")
        name = self.checker.string(entry.value, where)
        if name is not None and not name.strip():
            self.checker.issue(entry.value.location, f"{where}: is empty")
        return name
