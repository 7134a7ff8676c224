"""``hookwall run --workers N``: N proxy processes on one port, under one supervisor.

One Python process uses one core. The supervisor binds the listen address with SO_REUSEPORT
(port 0 becomes a free port here, so every worker reports the same one) and keeps that bound,
non-listening socket for its whole life, so a restarted worker always gets the port back. It
creates the CA and the delivery store once (workers would race to), then starts N workers:
``python -m hookwall <the same arguments> --listen HOST:PORT --worker I/N``. Each worker is a
complete ``hookwall run`` whose listener joins the port's SO_REUSEPORT group (``listener.py``);
the kernel spreads new connections over them.

- A worker that exits while the supervisor is not stopping is restarted: at once if it had
  run for ``STABLE_AFTER`` seconds, else after a backoff (0.5 s, doubling, at most 30 s).
  ``worker_exited`` and ``worker_started`` events say so. A worker that fails
  ``GIVE_UP_AFTER`` times in a row without ever running ``STABLE_AFTER`` seconds (a port
  taken, a policy that no longer loads) while no other worker is running stops the
  supervisor with exit status 1; while others serve, it keeps being retried.
- SIGTERM/SIGINT are forwarded; every worker drains (its own bounded drain) and the supervisor
  exits 0 once all have exited cleanly; a second signal is forwarded too (workers stop at
  once). SIGHUP (policy reload) and SIGUSR1 (limits snapshot) are forwarded.
- The supervisor reserves one port per worker for its internal listener (where its hops and
  retries go, so a chain stays on its worker). Every worker is told all of them and the
  supervisor's admin address, and refuses them as destinations (the loop guard,
  ``destinations/selfaddr.py``).
- Workers share the secret that marks hookwall's own redirect hops (a hop may land on any
  worker); it reaches them on stdin, never in argv or the environment.
- A worker whose supervisor disappears (SIGKILL) stops itself, gracefully.
- Limits: without a shared backend each worker enforces its share of every cap
  (``limits/share.py``); with ``limits: {backend: redis://...}`` they share one cap.
- Log lines of worker processes carry ``worker`` (1..N) and ``pid``.
- ``--admin-listen`` is the supervisor's: it binds it before any worker starts (a taken
  port ends the start at once) and answers for every worker, which each serve their own
  ``/readyz`` and ``/metrics`` on a unix socket in a private directory (``workeradmin.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from hookwall.access.decide import is_loopback_listen
from hookwall.app.admin import AdminServer
from hookwall.app.workeradmin import WorkersAdmin
from hookwall.core.listenerrors import cannot_listen
from hookwall.deliveries import logs
from hookwall.destinations.hostname import host_port
from hookwall.mitm import listener

__all__ = [
    "WorkerInfo",
    "current_worker",
    "enter_worker",
    "parse_worker",
    "run_proxy",
    "supervise",
]

STABLE_AFTER = 10.0  # a worker that ran this long is restarted at once
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
GIVE_UP_AFTER = 6  # consecutive short-lived runs of one worker before the supervisor gives up
DRAIN_GRACE = 10.0 + 5.0  # a worker's own drain bound, plus start-up slack, before SIGKILL
PARENT_CHECK = 1.0  # seconds between checks that the supervisor is still there
FORWARDED = (signal.SIGHUP, signal.SIGUSR1)


@dataclass(slots=True)
class WorkerInfo:
    index: int  # 1..count
    count: int
    internal_token: str | None = None  # from the supervisor, on stdin
    # The internal listeners' ports, one per worker (reserved by the supervisor; stdin too).
    internal_ports: tuple[int, ...] = ()
    parent: int | None = None
    admin_socket: str | None = None  # where this worker serves /readyz and /metrics to it


_current: WorkerInfo | None = None


def current_worker() -> WorkerInfo | None:
    """This process's place among the workers, or None outside ``--workers N``."""
    return _current


def parse_worker(text: str) -> WorkerInfo:
    """``--worker I/N`` (internal: set by the supervisor)."""
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, got {text!r}")
    return WorkerInfo(int(index), int(count))


def workers_count(text: str) -> int:
    """``--workers N``: 1 to 256."""
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes from 1 to 256, got {text!r}"
        )
    return int(text)


# -- the worker side ------------------------------------------------------------------------


def enter_worker(args: argparse.Namespace) -> WorkerInfo:
    """Become worker I of N: read the shared secret from stdin, tag every log line."""
    global _current
    info: WorkerInfo = args.worker
    line = sys.stdin.readline() if not sys.stdin.isatty() else ""
    try:
        given = json.loads(line)
        info.internal_token = given["internal_token"] or None
        info.internal_ports = tuple(int(port) for port in given.get("internal_ports") or ())
        info.admin_socket = given.get("admin_socket") or None
        # the supervisor's admin listener: never a destination either
        args.sibling_listeners = tuple(
            (str(host), int(port)) for host, port in given.get("sibling_listeners") or ()
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        info.internal_token = None  # started by hand: redirect hops stay on this worker
    info.parent = os.getppid()
    args.ca = None  # the supervisor installed it; N workers rewriting it would race readers
    if info.admin_socket is not None or info.index > 1:
        args.admin_listen = None  # the supervisor serves it for all (workeradmin.py)
    _current = info
    config = structlog.get_config()
    fields = {"worker": info.index, "pid": os.getpid()}

    def add_worker(_: Any, __: str, event: Any) -> Any:
        event.update(fields)
        return event

    structlog.configure(processors=[add_worker, *config["processors"]])
    return info


async def run_proxy(config: Any, runtime: Any, worker: WorkerInfo | None = None) -> int:
    """Serve one proxy process: ``hookwall run``, or one worker of ``--workers N``."""
    from hookwall.app.limiter import build_limiter
    from hookwall.app.master import serve
    from hookwall.flow.runtime import INTERNAL_HOST

    share = worker.count if worker is not None else 1
    tasks: set[asyncio.Task[None]] = set()
    if worker is not None:
        listener.install()
        if worker.internal_token:
            runtime.internal_token = worker.internal_token
        if len(worker.internal_ports) == worker.count:
            runtime.internal_port = worker.internal_ports[worker.index - 1]
            for port in worker.internal_ports:  # every worker's: never a destination
                runtime.self_addresses.add_listener(INTERNAL_HOST, port)
        tasks.add(asyncio.get_running_loop().create_task(_watch_parent(worker)))
    built = build_limiter(runtime.policy, share)
    runtime.limiter = built.limiter
    await built.start()
    try:
        return await serve(config, runtime)
    finally:
        for task in tasks:
            task.cancel()
        await built.aclose()


async def _watch_parent(worker: WorkerInfo) -> None:
    """An orphaned worker (its supervisor was SIGKILLed) drains and exits like on SIGTERM."""
    while True:
        await asyncio.sleep(PARENT_CHECK)
        if os.getppid() != worker.parent:
            logs.get_logger().warning("supervisor_gone", message="draining and exiting")
            os.kill(os.getpid(), signal.SIGTERM)
            return


# -- the supervisor -------------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0  # consecutive short-lived runs
    restarts: int = 0
    stop_code: int | None = None  # how it exited once the supervisor was stopping


class Supervisor:
    def __init__(
        self,
        command: list[str],
        host: str,
        port: int,
        count: int,
        drain_grace: float,
        admin: tuple[str, int] | None = None,
        admin_token: str | None = None,
        internal_ports: tuple[int, ...] = (),
    ) -> None:
        self.command = command
        self.admin_listen = admin
        self.admin_token = admin_token
        self.admin_dir: str | None = None  # the workers' admin sockets (0700)
        self.admin_bound: tuple[str, int] | None = None  # every worker refuses it as a destination
        self.internal_ports = internal_ports  # reserved here: one internal listener per worker
        self.started_fields: dict[str, object] = {}
        self.host, self.port, self.count = host, port, count
        self.drain_grace = drain_grace
        self.token = secrets.token_hex(16)
        self.slots = [_Slot(i) for i in range(1, count + 1)]
        self.stopping = False
        self.failed = False
        self._changed = asyncio.Event()
        self._signals = 0

    def argv(self, slot: _Slot) -> list[str]:
        return [
            *self.command,
            "--listen",
            host_port(self.host, self.port),
            "--worker",
            f"{slot.index}/{self.count}",
        ]

    async def spawn(self, slot: _Slot) -> None:
        # Its own process group: a Ctrl-C in a terminal reaches the supervisor only, which
        # forwards it once (twice would mean "stop at once" to the workers).
        proc = await asyncio.create_subprocess_exec(
            *self.argv(slot), stdin=asyncio.subprocess.PIPE, process_group=0
        )
        assert proc.stdin is not None
        given: dict[str, object] = {
            "internal_token": self.token,
            "internal_ports": self.internal_ports,
            "sibling_listeners": [self.admin_bound] if self.admin_bound else [],
        }
        if self.admin_dir is not None:
            given["admin_socket"] = self.admin_socket(slot.index)
        proc.stdin.write(json.dumps(given).encode() + b"\n")
        with contextlib.suppress(OSError):
            await proc.stdin.drain()
        proc.stdin.close()
        slot.proc, slot.started = proc, time.monotonic()
        logs.get_logger().info(
            "worker_started", worker=slot.index, pid=proc.pid, restarts=slot.restarts
        )

    def admin_socket(self, index: int) -> str:
        assert self.admin_dir is not None
        return os.path.join(self.admin_dir, f"worker-{index}.sock")

    async def start_admin(self) -> AdminServer | None:
        """Bind ``--admin-listen`` for every worker (SystemExit with hookwall's words if it
        cannot); the workers will serve theirs on unix sockets in a private directory."""
        if self.admin_listen is None:
            return None
        self.admin_dir = tempfile.mkdtemp(prefix="hookwall-admin-")  # mode 0700
        app = WorkersAdmin(
            {slot.index: self.admin_socket(slot.index) for slot in self.slots},
            self.admin_token,
            lambda: self.stopping,
        )
        server = AdminServer(app, *self.admin_listen)
        try:
            self.started_fields["admin"] = await server.start()
            self.admin_bound = (server.host, server.port)
        except OSError as exc:
            host, port = self.admin_listen
            raise SystemExit(cannot_listen("admin", host_port(host, port), exc)) from None
        return server

    def signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    def on_stop_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if not self.stopping:
            self.stopping = True
            logs.get_logger().info("supervisor_stopping", signal=sig.name, workers=self.count)
        self.signal_all(sig)  # a second signal: the workers stop at once
        self._changed.set()

    async def watch(self, slot: _Slot) -> None:
        """Run one worker slot until the supervisor stops: restart what exits."""
        backoff = 0.0
        while not self.stopping and not self.failed:
            await self.spawn(slot)
            assert slot.proc is not None
            code = await slot.proc.wait()
            uptime = time.monotonic() - slot.started
            if uptime >= STABLE_AFTER:
                slot.failures, backoff = 0, 0.0
            else:
                slot.failures += 1
                backoff = BACKOFF_FIRST if backoff == 0 else min(BACKOFF_MAX, backoff * 2)
            fields: dict[str, object] = {
                "worker": slot.index,
                "pid": slot.proc.pid,
                "uptime_s": round(uptime, 3),
            }
            if code < 0:
                try:
                    fields["signal"] = signal.Signals(-code).name
                except ValueError:
                    fields["signal"] = -code
            else:
                fields["exit_code"] = code
            if self.stopping:
                slot.stop_code = code
                logs.get_logger().info("worker_exited", **fields)
                break
            others_up = any(
                other is not slot and other.proc is not None and other.proc.returncode is None
                for other in self.slots
            )
            if slot.failures >= GIVE_UP_AFTER and not others_up:
                logs.get_logger().error(
                    "worker_exited",
                    **fields,
                    message=f"worker {slot.index} failed {slot.failures} times in a row; "
                    "stopping every worker",
                )
                self.failed = True
                self.stopping = True
                self.signal_all(signal.SIGTERM)
                break
            logs.get_logger().warning("worker_exited", **fields, restart_in_s=backoff)
            slot.restarts += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    while not self.stopping:
                        self._changed.clear()
                        await self._changed.wait()
        self._changed.set()

    async def run(self) -> int:
        try:
            admin = await self.start_admin()
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            self._remove_admin_dir()
            return 1
        logs.get_logger().info("supervisor_started", **self.started_fields)
        try:
            return await self._run()
        finally:
            if admin is not None:
                await admin.close()
            self._remove_admin_dir()

    def _remove_admin_dir(self) -> None:
        if self.admin_dir is not None:
            shutil.rmtree(self.admin_dir, ignore_errors=True)

    async def _run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_stop_signal, sig)
        for sig in FORWARDED:
            loop.add_signal_handler(sig, self.signal_all, sig)
        watchers = [loop.create_task(self.watch(slot)) for slot in self.slots]
        while not all(w.done() for w in watchers):
            self._changed.clear()
            if self.stopping:
                break
            await self._changed.wait()
        try:
            async with asyncio.timeout(self.drain_grace):
                await asyncio.gather(*watchers)
        except TimeoutError:
            logs.get_logger().warning("workers_killed", grace_s=self.drain_grace)
            self.signal_all(signal.SIGKILL)
            await asyncio.gather(*watchers, return_exceptions=True)
        # Clean: every worker running when the stop came drained and exited 0 (one that was
        # waiting for its restart had nothing to drain).
        codes = [slot.stop_code for slot in self.slots]
        clean = not self.failed and all(code in (0, None) for code in codes)
        logs.get_logger().info("supervisor_stopped", exit_codes=codes)
        return 0 if clean else 1


def supervise(args: argparse.Namespace, policy: Any, data_dir: Path) -> int:
    """The supervisor of ``hookwall run --workers N`` (N > 1); returns the exit status."""
    from hookwall.app.ca import ensure_ca
    from hookwall.deliveries.store import STORE_FILENAME, Store, StoreError
    from hookwall.flow.runtime import INTERNAL_HOST
    from hookwall.limits.share import describe_share

    host, port = args.listen
    try:
        reserved = listener.reserve(host, port)
    except OSError as exc:
        print(cannot_listen("proxy", host_port(host, port), exc), file=sys.stderr)
        return 1
    internal_ports: list[int] = []
    try:
        for _ in range(args.workers):
            reserved += listener.reserve(INTERNAL_HOST, 0)
            internal_ports.append(reserved[-1].getsockname()[1])
    except OSError as exc:
        for sock in reserved:
            sock.close()
        print(f"hookwall: cannot reserve a loopback port: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        port = reserved[0].getsockname()[1]
        ensure_ca(data_dir, args.ca)  # once: N workers creating it at once would race
        with contextlib.suppress(StoreError):  # create or migrate once; workers report errors
            Store.open(data_dir / STORE_FILENAME).close()
        shared = policy.shared_limits
        limits = (
            f"shared in {shared.backend} (one cap for every worker and replica)"
            if shared is not None
            else describe_share(args.workers)
        )
        listen = host_port(host, port)
        argv = list(getattr(args, "argv", None) or sys.argv[1:])
        command = [sys.executable, "-m", "hookwall", *argv]
        admin = getattr(args, "admin_listen", None)
        token = os.environ.get("HOOKWALL_ADMIN_TOKEN") or None
        supervisor = Supervisor(
            command, host, port, args.workers, DRAIN_GRACE, admin, token, tuple(internal_ports)
        )
        supervisor.started_fields.update(
            pid=os.getpid(),
            workers=args.workers,
            listen=listen,
            limits=limits,
            limits_backend=shared.backend if shared is not None else "local",
            admin=None,
        )
        if admin is not None and token is None and not is_loopback_listen(admin[0]):
            logs.get_logger().warning(
                "admin_unauthenticated",
                admin=f"{admin[0]}:{admin[1]}",
                message="/metrics is served without a bearer token on a non-loopback "
                "address; set HOOKWALL_ADMIN_TOKEN, or keep the port behind a firewall",
            )
        return asyncio.run(supervisor.run())
    finally:
        for sock in reserved:
            sock.close()
