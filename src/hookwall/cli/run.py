"""``hookwall run``: the forward proxy (one process, or ``--workers N`` under a supervisor)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hookwall.cli.command import Subcommands, add_command
from hookwall.cli.datadir import data_dir
from hookwall.cli.policyargs import add_policy_args, policy_of, resolver_for
from hookwall.core import eventloop
from hookwall.core.listen import MODES, Listener, Mode, parse_listen

# hookwall.deliveries.logs.FORMATS, without importing the logging stack to build the parser
LOG_FORMATS = ("auto", "json", "console")

if TYPE_CHECKING:
    from hookwall.app.workers import WorkerInfo


# Where each mode listens when no --listen says otherwise.
DEFAULT_LISTEN: dict[Mode, str] = {"regular": "127.0.0.1:8080", "transparent": "127.0.0.1:8081"}


def _listen(text: str) -> str:
    """``--listen [MODE@]HOST:PORT``: checked now, read once ``--mode`` is known."""
    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _admin_listen(text: str) -> tuple[str, int] | None:
    if text.strip().lower() == "off":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or "@" in text or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:9090), got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def listeners_of(args: argparse.Namespace) -> list[Listener]:
    """The listeners asked for: each ``--listen`` (its mode, else ``--mode``'s), or the
    default address of ``--mode``."""
    if args.worker_listen:  # a worker: the supervisor's reserved ports, each with its mode
        return [parse_listen(text) for text in args.worker_listen]
    given = args.listen or [DEFAULT_LISTEN[args.mode]]
    return [parse_listen(text, args.mode) for text in given]


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


def twice_listed(listeners: list[Listener]) -> str | None:
    """Two --listen for one address (port 0 aside: each gets a port of its own)."""
    seen: set[tuple[str, int]] = set()
    for listener in listeners:
        key = (listener.host, listener.port)
        if listener.port and key in seen:
            return f"--listen: {listener.address} is given twice; give each listener its own port"
        seen.add(key)
    return None


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
        metavar="[MODE@]HOST:PORT",
        type=_listen,
        action="append",
        help="address to accept senders on; repeat it for several listeners, e.g. "
        "--listen 127.0.0.1:8080 --listen transparent@127.0.0.1:8081 for both modes at once "
        "(default 127.0.0.1:8080, or 127.0.0.1:8081 with --mode transparent; port 0 picks a "
        "free port, printed in the proxy_started event)",
    )
    run.add_argument(
        "--mode",
        choices=MODES,
        default="regular",
        help="how senders reach the listeners given without a MODE@: 'regular' (the default), "
        "the explicit proxy senders name in HTTP_PROXY/HTTPS_PROXY; or 'transparent', "
        "connections the kernel redirects to hookwall (see `hookwall redirect-rules`), so a "
        "client that ignores proxy settings cannot go around hookwall. Every rule applies "
        "the same way in both: the name comes from the Host header or the TLS SNI, and "
        "hookwall resolves it, checks it and connects only to the address it checked",
    )
    run.add_argument(
        "--sender",
        metavar="NAME",
        help="every request on these listeners that carries no proxy credentials is from "
        "the policy's sender NAME (a sidecar serving one service; transparent senders cannot "
        "send credentials). Its clients: addresses still apply. Without it, a transparent "
        "listener knows a sender by its client address (the sender's clients: in the policy)",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the CA and state live (default $HOOKWALL_DATA_DIR or ~/.local/share/hookwall)",
    )
    run.add_argument(
        "--log-file",
        metavar="PATH",
        help="also append the log lines to this file, always as JSON (for machines; "
        "`hookwall logs --file PATH` reads it), whatever --log-format says",
    )
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="auto",
        help="the log lines on stdout: 'json', one JSON object per line (what log shippers "
        "and `jq` read); 'console', structlog's aligned key=value lines for a person "
        "watching (in colour on a terminal, unless NO_COLOR is set); 'auto' (the default): "
        "console when stdout is a terminal, JSON otherwise. Give 'json' explicitly where a "
        "collector reads a terminal (docker run -t)",
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
    run.add_argument("--worker-listen", action="append", type=_listen, help=argparse.SUPPRESS)
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
        help="listen on a non-loopback address although the policy defines no senders, or "
        "with --sender (anyone who can reach it may use the proxy; a warning is logged at "
        "every start). Without this, hookwall refuses to start there: define senders instead",
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
    from hookwall.access.decide import listen_refusal, sender_problem
    from hookwall.app.limiter import backend_problem
    from hookwall.app.master import ProxyConfig
    from hookwall.app.operations import OpsConfig
    from hookwall.deliveries import logs
    from hookwall.flow.runtime import Runtime

    stdout = None if args.quiet else sys.stdout
    terminal = logs.is_terminal(stdout)
    args.log_format = logs.choose_format(args.log_format, terminal)
    logs.configure(
        stdout=stdout,
        log_file=args.log_file,
        log_format=args.log_format,
        colours=terminal and not os.environ.get("NO_COLOR"),
    )
    if args.workers > 1 and args.worker is None:  # the workers write what the supervisor does
        args.argv = [
            *(getattr(args, "argv", None) or sys.argv[1:]),
            "--log-format",
            args.log_format,
        ]
    policy = policy_of(args.policy)
    args.listeners = listeners_of(args)
    problem = sender_problem(args.sender, policy) or twice_listed(args.listeners)
    # an extra that is not installed: refused here, before any worker starts
    problem = problem or eventloop.loop_problem(args.event_loop) or backend_problem(policy)
    for listener in args.listeners:
        problem = problem or listen_refusal(
            listener.host, bool(policy.senders) and args.sender is None, args.allow_unauthenticated
        )
    if problem is not None:
        print(f"hookwall: {problem}", file=sys.stderr)
        return 1
    admin_socket = None
    if args.workers > 1 or args.worker is not None:
        from hookwall.app import workers

        if args.worker is None:  # the supervisor: it starts N of this command
            return workers.supervise(args, policy, data_dir(args))
        admin_socket = workers.enter_worker(args).admin_socket
    if args.allow_unauthenticated and (not policy.senders or args.sender):
        logs.get_logger().warning(
            "unauthenticated_listener",
            listen=[listener.describe() for listener in args.listeners],
            message="--allow-unauthenticated: "
            + (
                f"--sender {args.sender} makes anyone who can reach these addresses that sender"
                if args.sender
                else "the policy defines no senders, so anyone who can reach these addresses "
                "may use hookwall as a proxy; define senders to close it"
            ),
        )
    config = ProxyConfig(
        listeners=tuple(args.listeners),
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
    from hookwall.mitm.listener import pin_free_ports

    listeners, reserved = pin_free_ports(args.listeners)
    config = dataclasses.replace(config, listeners=tuple(listeners))
    runtime = Runtime(policy, resolver_for(policy, args.dns_server), default_sender=args.sender)
    try:
        return eventloop.run(run_proxy(config, runtime, args.worker), args.event_loop)
    finally:
        for sock in reserved:  # held until now, so nobody else could take those ports
            sock.close()
