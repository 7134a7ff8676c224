"""The human-readable policy summary printed by ``hookwall check``.

Shows effective values (defaults merged in), so an operator sees what each destination
really gets without doing the merge in their head.
"""

from __future__ import annotations

from hookwall.access.settings import sender_lines
from hookwall.config.units import format_duration, format_size
from hookwall.destinations.addresses import NAMED_SETS, Prefix, named_set
from hookwall.destinations.coverage import reopened_by
from hookwall.destinations.hostname import host_port
from hookwall.policy.model import Policy, Rule, Settings, merge_rule

__all__ = ["summarize"]


def _prefixes(prefixes: tuple[Prefix, ...]) -> str:
    """Named sets by name, other prefixes as CIDRs: 'special-purpose, 10.1.0.0/16'."""
    parts: list[str] = []
    remaining = list(prefixes)
    for name in NAMED_SETS:
        try:
            members = set(named_set(name))
        except KeyError:
            continue
        if members and members.issubset(remaining):
            parts.append(name)
            remaining = [prefix for prefix in remaining if prefix not in members]
    parts.extend(str(prefix.network) for prefix in dict.fromkeys(remaining))
    return ", ".join(parts) or "none"


def _settings(settings: Settings, *, deny: bool, key_ids: bool = True) -> str:
    network = settings.network
    fields = [
        _tls(settings),
        f"upgrade {'on' if settings.upgrade else 'off'}",
        f"ports {network.ports}",
    ]
    if deny:
        fields.append(f"deny {_prefixes(network.deny)}")
    fields.append(f"allow {_prefixes(network.allow)}")
    limits, timeouts = settings.limits, settings.timeouts
    config = limits.config
    flood = f"limits {config.concurrency} in flight, queue {config.queue}"
    flood += f" for {format_duration(config.queue_timeout)}"
    if config.rate is not None:
        flood += f", {config.rate:g}/s"
    if config.circuit_failures:
        flood += f", circuit after {config.circuit_failures} failures"
    if limits.key == "host":
        flood += ", shared by all ports"
    if limits.per_sender:
        flood += ", per sender"
    fields.append(flood)
    fields.append(
        f"timeouts connect {format_duration(timeouts.connect)}, headers "
        f"{format_duration(timeouts.headers)}, response {format_duration(timeouts.response)}, "
        f"request body {format_duration(timeouts.body)}"
    )
    fields.append(
        f"bodies up to {format_size(settings.max_request_body)} out, "
        f"{format_size(settings.max_response_body)} back"
    )
    capture = settings.logging.capture_body
    fields.append(f"store bodies up to {format_size(capture)}" if capture else "store no bodies")
    if settings.logging.id_header:
        fields.append(f"event id from {settings.logging.id_header}")
    redirects = settings.redirects
    if redirects.mode == "follow":
        credentials = ", keeping credentials" if redirects.keep_credentials else ""
        fields.append(
            f"redirects follow ({redirects.scope}, up to {redirects.max_hops} hops{credentials})"
        )
    else:
        fields.append(f"redirects {redirects.mode}")
    if settings.signing is not None:
        signing = settings.signing
        keys = ", ".join(
            f"{key.key_id} ({ref})" if key_ids else f"{ref} (not read)"
            for key, ref in zip(signing.keys, signing.references, strict=True)
        )
        fields.append(f"signing {signing.scheme.name} with {keys}")
    return "; ".join(fields)


def _tls(settings: Settings) -> str:
    """The tls mode, and where a refused CONNECT is answered (a passthrough destination has
    no certificate of hookwall's: always on the CONNECT, so nothing more to say)."""
    if settings.tls == "passthrough":
        return "tls passthrough"
    return f"tls {settings.tls}, connect_refusals {settings.connect_refusals}"


def _rule_line(rule: Rule, settings: Settings, key_ids: bool) -> str:
    head = f"  {rule.name}: {rule.action} {', '.join(rule.hosts)}"
    if rule.senders:
        head += f" for senders {', '.join(rule.senders)}"
    if not rule.enforce:
        head += " (report-only)"
    if rule.action == "deny":  # how a CONNECT to it is refused is all that applies
        return f"{head}; {_tls(settings)}  [{rule.location}]"
    details = _settings(settings, deny=bool(rule.deny), key_ids=key_ids)
    return f"{head}; {details}  [{rule.location}]"


def summarize(policy: Policy) -> str:
    """Files, resolver, defaults, then one line per destination with its effective settings."""
    count = len(policy.sources)
    lines = [f"policy from {count} file{'s' if count != 1 else ''}:"]
    lines.extend(f"  {source}" for source in policy.sources)
    if policy.unsafe:
        lines.append("unsafe: true (the built-in deny sets may be switched off)")
    dns = policy.dns
    servers = ", ".join(host_port(host, port) for host, port in dns.servers)
    lines.append(
        f"dns: {servers or 'system resolvers'}; timeout {format_duration(dns.timeout)}; "
        f"max ttl {format_duration(dns.max_ttl)}; cache {dns.cache_size} entries"
    )
    proxy, store = policy.proxy, policy.logging
    lines.append(
        f"proxy: at most {proxy.max_connections} client connections "
        f"({proxy.max_connections_per_client} per client address); a request head within "
        f"{format_duration(proxy.head_timeout)}, at most {format_size(proxy.max_header_bytes)} "
        f"and {proxy.max_header_fields} fields; idle connections closed after "
        f"{format_duration(proxy.idle_timeout)}; at most {proxy.max_idle_upstream_per_client} "
        f"idle receiver connections per client connection, {proxy.max_idle_upstream} in all; "
        f"request bodies in memory up to {format_size(proxy.max_buffered_bodies)}"
    )
    lines.append(
        f"the delivery store keeps {format_duration(store.retention)}, "
        f"at most {format_size(store.max_size)}"
    )
    added = store.redact
    if added.headers or added.query:
        names = [
            *(f"header {n}" for n in sorted(added.headers)),
            *(f"?{n}" for n in sorted(added.query)),
        ]
        lines.append(f"redacted besides the built-in credential names: {', '.join(names)}")
    if policy.ca_bundle:
        lines.append(f"extra upstream CAs: {policy.ca_bundle}")
    if policy.shared_limits is not None:
        shared = policy.shared_limits
        lines.append(
            f"limits: shared in {shared.backend} (slot leases {format_duration(shared.lease)}); "
            + ("if it is down, each process enforces them alone"
               if shared.on_backend_failure == "local"
               else "if it is down, deliveries are refused (503 limits-unavailable)")
        )  # fmt: skip
    lines.extend(sender_lines(policy.senders))
    if policy.senders_none:
        lines.append("senders: none (stated): no credentials asked; hookwall run keeps to loopback")
    if not policy.secrets_read:
        lines.append(
            "secrets: not read (--no-secrets): each reference was checked for its form; "
            "hookwall run reads them all and fails on one that is missing or malformed"
        )
    key_ids = policy.secrets_read  # a stand-in's key id would be a random one
    lines.append(f"defaults: allow; {_settings(policy.defaults, deny=True, key_ids=key_ids)}")
    if not policy.rules:
        lines.append("no destinations: every host gets the defaults")
        return "\n".join([*lines, *_reopening_lines(policy)])
    lines.append(
        f"{len(policy.rules)} destination{'s' if len(policy.rules) != 1 else ''} "
        "(the most specific host pattern wins; other hosts get the defaults):"
    )
    for rule in policy.rules:
        lines.append(_rule_line(rule, merge_rule(policy.defaults, rule), key_ids))
    lines.extend(_reopening_lines(policy))
    return "\n".join(lines)


def _reopening_lines(policy: Policy) -> list[str]:
    """Every allow row that reopens special-purpose space, what it reopens and for whom:
    the exceptions an operator should know about, as `explain` would name them."""
    found: list[str] = []

    def scope(allow: tuple[Prefix, ...], settings: Settings, who: str) -> None:
        reopened = reopened_by(settings.network.allow, settings.network.deny)
        for row, part in reopened.rows:
            if row in allow:
                blocks = "; ".join(
                    f"{', '.join(str(n) for n in inside.networks()[:3])} of {block.network} "
                    f"{block.label}"
                    for block, inside in reopened.blocks(part)
                )
                found.append(f"  {row.label} reopens {blocks} for {who}")

    scope(policy.defaults.network.allow, policy.defaults, "every destination")
    for rule in policy.rules:
        if rule.allow:
            scope(rule.allow, merge_rule(policy.defaults, rule), ", ".join(rule.hosts))
    if found:
        found.insert(0, "exceptions into special-purpose space:")
    return found
