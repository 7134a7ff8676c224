"""The ``hookwall`` command: run the proxy, check and explain policies, find the CA."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hookwall import __version__
from hookwall.cli import logs as cli_logs
from hookwall.core import eventloop
from hookwall.policy import Policy, PolicyError, load_default_policy, load_policy, summarize

EPILOG = """\
examples:
  hookwall run                                   proxy on 127.0.0.1:8080, built-in default policy
  hookwall run --policy policies/ --listen 0.0.0.0:8080   (the policy must define senders)
  hookwall check policies/prod.yaml              validate a policy (exit 1 and every error)
  hookwall explain http://localhost:3000/hook    what the proxy would do, without sending
  hookwall explain https://api.pay.example/ --sender billing   ... for one sender
  hookwall keys generate --scheme standard-webhooks   a new signing secret
  hookwall ca --path                             the CA certificate senders must trust
  hookwall logs --host hooks.acme.com --since 1d --status 5xx   what happened to deliveries
  hookwall logs show req_...                     one delivery in full (also: hookwall replay)
  hookwall send-test https://hooks.acme.com/x    a sample webhook through the proxy

senders then set HTTP_PROXY=http://127.0.0.1:8080 and HTTPS_PROXY=http://127.0.0.1:8080
(with senders in the policy: HTTP_PROXY=http://NAME:TOKEN@host:8080).
"""


def default_data_dir() -> Path:
    if env := os.environ.get("HOOKWALL_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hookwall"


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:8080), got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _admin_listen(text: str) -> tuple[str, int] | None:
    return None if text.strip().lower() == "off" else _listen(text)


def _policy_poll(text: str) -> float:
    """``--policy-poll``: a duration from 100ms to 1h."""
    from hookwall.config.units import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"expected 100ms to 1h, got {text!r}")
    return seconds


def _workers(text: str) -> int:
    from hookwall.app.workers import workers_count

    return workers_count(text)


def _worker(text: str) -> Any:
    from hookwall.app.workers import parse_worker

    return parse_worker(text)  # internal: worker I of N, started by the supervisor


def _dns_server(text: str) -> tuple[str, int]:
    from hookwall.destinations.resolver import parse_server

    try:
        return parse_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        metavar="FILE_OR_DIR",
        help="policy YAML file or directory of *.yaml files (default: the built-in policy, "
        "which denies every internal address and allows ports 80 and 443)",
    )
    p.add_argument(
        "--dns-server",
        metavar="IP[:PORT]",
        action="append",
        type=_dns_server,
        default=[],
        help="DNS server to resolve destinations with; repeat for several "
        "(default: the policy's dns.servers, else the system's resolv.conf)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookwall",
        description="hookwall: an egress proxy for outbound webhooks. It refuses every "
        "delivery to an internal address (SSRF), pins each connection to the IP it checked, "
        "and logs one JSON event per delivery.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hookwall {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the proxy",
        description="Run the forward proxy. "
        "Stops gracefully on SIGTERM/SIGINT (a second signal stops at once).",
    )
    _add_policy_args(run)
    run.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=_listen,
        default=("127.0.0.1", 8080),
        help="address to accept senders on (default 127.0.0.1:8080; port 0 picks "
        "a free port, printed in the proxy_started event)",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the CA and state live (default $HOOKWALL_DATA_DIR or ~/.local/share/hookwall)",
    )
    run.add_argument(
        "--log-file", metavar="PATH", help="also append the JSON log lines to this file"
    )
    run.add_argument("--quiet", action="store_true", help="no log lines on stdout")
    run.add_argument(
        "--no-store",
        dest="store",
        action="store_false",
        help="keep no delivery store: `hookwall logs`, `logs show` and `replay` have nothing to "
        "read, and the JSON log lines are the only record. Saves the store's disk writes "
        "(`make bench` measures it as hw-nostore)",
    )
    run.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        default=1,
        help="run N proxy processes on the one listen address (SO_REUSEPORT), under a "
        "supervisor that restarts a crashed one (default 1). Without a shared limits backend "
        "each enforces concurrency and rate divided by N (at least 1)",
    )
    run.add_argument("--worker", type=_worker, default=None, help=argparse.SUPPRESS)
    run.add_argument(
        "--event-loop",
        choices=eventloop.CHOICES,
        default="asyncio",
        help="the event loop: the standard library's (asyncio, the default) or uvloop, "
        "which was no faster on average in `make bench` (configuration hw-uvloop)",
    )
    run.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="listen on a non-loopback address although the policy defines no senders (anyone "
        "who can reach it may use the proxy; a warning is logged at every start). Without "
        "this, hookwall refuses to start there: define senders instead",
    )
    run.add_argument(
        "--ca",
        type=Path,
        metavar="PEM",
        help="use this CA (certificate and private key in one PEM file) to intercept TLS "
        "instead of generating one; every replica must share the CA senders trust",
    )
    run.add_argument(
        "--policy-poll",
        metavar="DURATION",
        type=_policy_poll,
        default=2.0,
        help="how often the --policy files are checked for changes (default 2s; 100ms to 1h). "
        "`kill -HUP` reloads at once whatever this is",
    )
    run.add_argument(
        "--admin-listen",
        metavar="HOST:PORT",
        type=_admin_listen,
        default=("127.0.0.1", 9090),
        help="admin endpoint for probes and Prometheus: /healthz, /readyz, /metrics "
        "(default 127.0.0.1:9090; 'off' disables it; port 0 picks a free port, printed in "
        "proxy_started as 'admin'). Set HOOKWALL_ADMIN_TOKEN to require "
        "'Authorization: Bearer TOKEN' for /metrics",
    )

    check = sub.add_parser(
        "check",
        help="validate a policy",
        description="Validate a policy. Exit 0 with a summary, or exit 1 "
        "listing every error as FILE:LINE:COL: message.",
    )
    check.add_argument("policy", metavar="FILE_OR_DIR")

    explain = sub.add_parser(
        "explain",
        help="show the decision for a URL without sending",
        description="Print the decision the proxy would take for a POST "
        "to URL: the rule matched, the DNS answers and their "
        "classification, allow/deny and the reason. Nothing is sent to "
        "the destination (DNS is asked, as the proxy would).",
    )
    explain.add_argument("url")
    _add_policy_args(explain)
    explain.add_argument(
        "--sender",
        metavar="NAME",
        help="judge as this sender of the policy's senders: (its scoped rules, its default); "
        "the proxy answers 407 to requests without credentials when senders are defined",
    )
    explain.add_argument("--json", action="store_true", help="machine-readable output")

    keys = sub.add_parser(
        "keys",
        help="signing keys",
        description="Signing keys for destinations' signing: sections.",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = keys_sub.add_parser(
        "generate",
        help="print a new signing secret",
        description="Print a new random secret for a signing scheme on stdout (one line, fit "
        "to pipe into a secret store); its key id, and for Ed25519 the public key receivers "
        "verify with, go to stderr. Then reference it from the policy as env:NAME or "
        "file:PATH; never paste it into the policy itself.",
        epilog="example:\n  hookwall keys generate --scheme standard-webhooks > /run/secrets/acme\n"
        "  # policy: signing: {scheme: standard-webhooks, secrets: [file:/run/secrets/acme]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument(
        "--scheme", required=True, choices=("standard-webhooks", "github", "stripe", "hmac")
    )
    generate.add_argument(
        "--ed25519",
        action="store_true",
        help="standard-webhooks only: an Ed25519 key pair (v1a signatures) instead of HMAC",
    )
    generate.add_argument("--json", action="store_true", help="secret, key id, public key as JSON")

    ca = sub.add_parser(
        "ca",
        help="where senders find the CA certificate to trust",
        description="Create hookwall's CA if needed and print its certificate "
        "(PEM) or, with --path, the file's path.",
    )
    ca.add_argument("--path", action="store_true", help="print the path instead of the PEM")
    ca.add_argument("--data-dir", type=Path, default=None)
    cli_logs.add_parsers(sub)  # logs, logs show, replay, send-test
    return parser


def _load(path: str | None) -> Policy:
    return load_policy(path) if path else load_default_policy()


def _resolver(policy: Policy, servers: Sequence[tuple[str, int]]) -> Any:
    from hookwall.destinations.resolver import Resolver

    dns = policy.dns
    return Resolver(
        servers or dns.servers,
        timeout=dns.timeout,
        max_ttl=dns.max_ttl,
        cache_size=dns.cache_size,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from hookwall.access.decide import listen_refusal
    from hookwall.app.master import ProxyConfig
    from hookwall.app.operations import OpsConfig
    from hookwall.deliveries import logs
    from hookwall.flow.runtime import Runtime

    logs.configure(stdout=None if args.quiet else sys.stdout, log_file=args.log_file)
    policy = _load(args.policy)
    host = args.listen[0]
    refusal = listen_refusal(host, bool(policy.senders), args.allow_unauthenticated)
    if refusal is not None:
        print(f"hookwall: {refusal}", file=sys.stderr)
        return 1
    admin_socket = None
    if args.workers > 1 or args.worker is not None:
        from hookwall.app import workers

        if args.worker is None:  # the supervisor: it starts N of this command
            return workers.supervise(args, policy, args.data_dir or default_data_dir())
        admin_socket = workers.enter_worker(args).admin_socket
    if args.allow_unauthenticated and not policy.senders:
        logs.get_logger().warning(
            "unauthenticated_listener",
            listen=f"{host}:{args.listen[1]}",
            message="--allow-unauthenticated: the policy defines no senders, so anyone who can "
            "reach this address may use hookwall as a proxy; define senders to close it",
        )
    config = ProxyConfig(
        listen_host=args.listen[0],
        listen_port=args.listen[1],
        data_dir=args.data_dir or default_data_dir(),
        ca=args.ca,
        store=args.store,
        ops=OpsConfig(
            policy_path=Path(args.policy) if args.policy else None,
            admin_listen=args.admin_listen,
            sibling_listeners=tuple(getattr(args, "sibling_listeners", ())),
            admin_token=os.environ.get("HOOKWALL_ADMIN_TOKEN") or None,
            admin_socket=admin_socket,
            dns_servers=tuple(args.dns_server),
            allow_unauthenticated=args.allow_unauthenticated,
            watch_interval=args.policy_poll,
        ),
    )
    from hookwall.app.workers import run_proxy

    runtime = Runtime(policy, _resolver(policy, args.dns_server))
    return eventloop.run(run_proxy(config, runtime, args.worker), args.event_loop)


def cmd_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    print(summarize(policy))
    print("policy OK")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from hookwall.destinations.decide import decide

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
    policy = _load(args.policy)
    if args.sender is not None and args.sender not in policy.senders:
        known = ", ".join(s.name for s in policy.senders) or "none (the policy has no senders:)"
        message = f"hookwall explain: unknown sender {args.sender!r}; senders: {known}"
        print(message, file=sys.stderr)
        return 2
    if policy.senders and args.sender is None:
        decision = _needs_credentials(host, port)
    else:
        resolver = _resolver(policy, args.dns_server)
        decision = asyncio.run(decide(host, port, policy, resolver, sender=args.sender))
    report = {
        "url": args.url,
        "sender": args.sender,
        "host": decision.host,
        "port": decision.port,
        "rule": decision.rule,
        "tls": decision.settings.tls if decision.settings else None,
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


def _needs_credentials(host: str, port: int) -> Any:
    """What the proxy answers a request without credentials when senders are defined."""
    from hookwall.destinations.decide import Decision

    message = (
        "the policy defines senders, so the proxy answers 407 to a request without "
        "credentials; pass --sender NAME to judge as one of them"
    )
    return Decision(False, "auth-required", message, host, port)


def _explain_text(r: dict[str, Any]) -> str:
    lines = [
        *([f"sender       {r['sender']}"] if r.get("sender") else []),
        f"destination  {r['host']}:{r['port']}",
        f"rule         {r['rule'] or '(defaults)'}" + (f"   tls: {r['tls']}" if r["tls"] else ""),
    ]
    if r["dns"]:
        lines.append(f"addresses    ({r['dns']})")
        lines += [f"  {'allow' if a['allowed'] else 'DENY '}  {a['why']}" for a in r["answers"]]
    lines += [
        f"report-only  would deny ({w['reason']}): {w['message']}" for w in r.get("would_deny", [])
    ]
    verdict = "ALLOW" if r["decision"] == "allow" else f"DENY ({r['reason']})"
    lines.append(f"decision     {verdict}: {r['message']}")
    return "\n".join(lines)


def cmd_ca(args: argparse.Namespace) -> int:
    from hookwall.app.ca import ensure_ca

    path = ensure_ca(args.data_dir or default_data_dir())
    print(path if args.path else path.read_text(), end="\n" if args.path else "")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from hookwall.signing.keys import generate_key

    if args.ed25519 and args.scheme != "standard-webhooks":
        print("hookwall keys: --ed25519 is for --scheme standard-webhooks", file=sys.stderr)
        return 2
    key = generate_key(args.scheme, ed25519=args.ed25519)
    if args.json:
        fields = {"scheme": args.scheme, "secret": key.secret, "key_id": key.key_id}
        print(json.dumps(fields | ({"public_key": key.public_key} if key.public_key else {})))
        return 0
    print(key.secret)
    print(f"# key id: {key.key_id}", file=sys.stderr)
    if key.public_key:
        print(f"# public key for receivers (v1a): {key.public_key}", file=sys.stderr)
    return 0


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "explain": cmd_explain,
    "keys": cmd_keys,
    "ca": cmd_ca,
    **cli_logs.COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --workers starts N of it
    try:
        return COMMANDS[args.command](args)
    except PolicyError as exc:
        print(f"hookwall: the policy has errors:\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
