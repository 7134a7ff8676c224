"""``hookwall run``: the forward proxy (one process, or ``--workers N`` under a supervisor)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hookwall.cli.command import Subcommands, add_command
from hookwall.cli.datadir import data_dir
from hookwall.cli.policyargs import add_policy_args, policy_of, resolver_for
from hookwall.core import eventloop

if TYPE_CHECKING:
    from hookwall.app.workers import WorkerInfo


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


def _worker(text: str) -> WorkerInfo:
    from hookwall.app.workers import parse_worker

    return parse_worker(text)  # internal: worker I of N, started by the supervisor


def register(commands: Subcommands) -> None:
    run = add_command(
        commands,
        "run",
        cmd_run,
        help="run the proxy",
        description="Run the forward proxy. "
        "Stops gracefully on SIGTERM/SIGINT (a second signal stops at once).",
    )
    add_policy_args(run)
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


def cmd_run(args: argparse.Namespace) -> int:
    from hookwall.access.decide import listen_refusal
    from hookwall.app.master import ProxyConfig
    from hookwall.app.operations import OpsConfig
    from hookwall.deliveries import logs
    from hookwall.flow.runtime import Runtime

    logs.configure(stdout=None if args.quiet else sys.stdout, log_file=args.log_file)
    policy = policy_of(args.policy)
    host = args.listen[0]
    refusal = listen_refusal(host, bool(policy.senders), args.allow_unauthenticated)
    if refusal is not None:
        print(f"hookwall: {refusal}", file=sys.stderr)
        return 1
    admin_socket = None
    if args.workers > 1 or args.worker is not None:
        from hookwall.app import workers

        if args.worker is None:  # the supervisor: it starts N of this command
            return workers.supervise(args, policy, data_dir(args))
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
        data_dir=data_dir(args),
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

    runtime = Runtime(policy, resolver_for(policy, args.dns_server))
    return eventloop.run(run_proxy(config, runtime, args.worker), args.event_loop)
