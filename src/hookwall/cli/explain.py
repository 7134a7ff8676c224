"""``hookwall explain``: the decision the proxy would take for a URL, without sending to it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hookwall.cli.command import Subcommands, add_command
from hookwall.cli.policyargs import add_no_secrets_arg, add_policy_args, policy_of, resolver_for

if TYPE_CHECKING:
    from hookwall.destinations.decide import Decision
    from hookwall.policy import Settings


def register(commands: Subcommands) -> None:
    explain = add_command(
        commands,
        "explain",
        cmd_explain,
        help="show the decision for a URL without sending",
        description="Print the decision the proxy would take for a POST "
        "to URL: the rule matched, the DNS answers and their "
        "classification, allow/deny and the reason. Nothing is sent to "
        "the destination (DNS is asked, as the proxy would).",
    )
    explain.add_argument("url")
    add_policy_args(explain)
    explain.add_argument(
        "--sender",
        metavar="NAME",
        help="judge as this sender of the policy's senders: (its scoped rules, its default); "
        "the proxy answers 407 to requests without credentials when senders are defined",
    )
    add_no_secrets_arg(explain)
    explain.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_explain(args: argparse.Namespace) -> int:
    from hookwall.destinations.decide import decide
    from hookwall.destinations.refusals import answered_at

    parts = urlsplit(args.url if "://" in args.url else f"http://{args.url}")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        print(f"hookwall explain: only http:// and https:// URLs, got {scheme}://", file=sys.stderr)
        return 2
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        print(f"hookwall explain: bad port in {args.url!r}: {exc}", file=sys.stderr)
        return 2
    host = parts.hostname or ""
    # urlsplit lower-cases and drops brackets; the proxy sees the same host text.
    policy = policy_of(args.policy, read_secrets=not args.no_secrets)
    if args.sender is not None and args.sender not in policy.senders:
        known = ", ".join(s.name for s in policy.senders) or "none (the policy has no senders:)"
        message = f"hookwall explain: unknown sender {args.sender!r}; senders: {known}"
        print(message, file=sys.stderr)
        return 2
    if policy.senders and args.sender is None:
        decision = _needs_credentials(host, port)
    else:
        resolver = resolver_for(policy, args.dns_server)
        decision = asyncio.run(decide(host, port, policy, resolver, sender=args.sender))
    report = {
        "url": args.url,
        "sender": args.sender,
        "host": decision.host,
        "port": decision.port,
        "rule": decision.rule,
        "tls": decision.settings.tls if decision.settings else None,
        "connect_refusals": _connect_refusals(decision.settings),
        # where an HTTPS client (a CONNECT) gets this refusal; None when it is not refused
        "refused_at": (
            None
            if decision.allowed or scheme != "https"
            else answered_at(decision, policy.defaults)
        ),
        "dns": decision.dns_source or None,
        "answers": [
            {"address": str(a.address), "allowed": a.allowed, "why": a.why}
            for a in decision.answers
        ],
        "decision": "allow" if decision.allowed else "deny",
        "reason": decision.reason,
        "message": decision.message,
        "connect_to": str(decision.pinned_ip) if decision.pinned_ip else None,
        "would_deny": [{"reason": r, "message": m} for r, m in decision.would_deny],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_explain_text(report))
    return 0 if decision.allowed else 1


def _connect_refusals(settings: Settings | None) -> str | None:
    """Where an intercepted destination's refused CONNECTs are answered (None: passthrough,
    always on the CONNECT, or no settings)."""
    if settings is None or settings.tls != "intercept":
        return None
    return settings.connect_refusals


def _needs_credentials(host: str, port: int) -> Decision:
    """What the proxy answers a request without credentials when senders are defined."""
    from hookwall.core.denials import Reason
    from hookwall.destinations.decide import Decision

    message = (
        "the policy defines senders, so the proxy answers 407 to a request without "
        "credentials; pass --sender NAME to judge as one of them"
    )
    return Decision(False, Reason.AUTH_REQUIRED, message, host, port)


def _explain_text(r: dict[str, Any]) -> str:
    lines = [
        *([f"sender       {r['sender']}"] if r.get("sender") else []),
        f"destination  {r['host']}:{r['port']}",
        f"rule         {r['rule'] or '(defaults)'}" + _tls_text(r),
    ]
    if r["dns"]:
        lines.append(f"addresses    ({r['dns']})")
        lines += [f"  {'allow' if a['allowed'] else 'DENY '}  {a['why']}" for a in r["answers"]]
    lines += [
        f"report-only  would deny ({w['reason']}): {w['message']}" for w in r.get("would_deny", [])
    ]
    verdict = "ALLOW" if r["decision"] == "allow" else f"DENY ({r['reason']})"
    lines.append(f"decision     {verdict}: {r['message']}")
    if r.get("refused_at") == "inside-tls":
        lines.append(
            "answered     inside TLS: the CONNECT is accepted and the first request in the "
            "tunnel gets this refusal (hookwall's CA must be trusted)"
        )
    elif r.get("refused_at") == "on-connect":
        lines.append("answered     on the CONNECT (most HTTPS clients show only the status)")
    return "\n".join(lines)


def _tls_text(r: dict[str, Any]) -> str:
    if not r["tls"]:
        return ""
    refusals = f", connect_refusals: {r['connect_refusals']}" if r["connect_refusals"] else ""
    return f"   tls: {r['tls']}{refusals}"
