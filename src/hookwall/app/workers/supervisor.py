"""The supervisor of ``hookwall run --workers N``: N worker slots on one port, kept running.

- A worker that exits while the supervisor is not stopping is restarted: at once if it had
  run for ``STABLE_AFTER`` seconds, else after a backoff (0.5 s, doubling, at most 30 s).
  ``worker_exited`` and ``worker_started`` events say so. A worker that fails
  ``GIVE_UP_AFTER`` times in a row without ever running ``STABLE_AFTER`` seconds (a port
  taken, a policy that no longer loads) while no other worker is running stops the
  supervisor with exit status 1; while others serve, it keeps being retried.
- SIGTERM/SIGINT are forwarded; every worker drains (its own bounded drain) and the supervisor
  exits 0 once all have exited cleanly; a second signal is forwarded too (workers stop at
  once). SIGHUP (policy reload) and SIGUSR1 (limits snapshot) are forwarded.
- ``--admin-listen`` is the supervisor's: it binds it before any worker starts (a taken
  port ends the start at once) and answers for every worker, each of which serves its own
  ``/readyz`` and ``/metrics`` on a unix socket in a private directory (``app/workeradmin.py``).

What is done once before it runs (ports, CA, store) is ``start.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

from hookwall.app.admin import AdminServer
from hookwall.app.workeradmin import WorkersAdmin
from hookwall.app.workers.handover import Handover
from hookwall.core.listen import Listener
from hookwall.core.listenerrors import cannot_listen
from hookwall.deliveries import logs
from hookwall.destinations.hostname import host_port

__all__ = ["Supervisor"]

STABLE_AFTER = 10.0  # a worker that ran this long is restarted at once
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
GIVE_UP_AFTER = 6  # consecutive short-lived runs of one worker before the supervisor gives up
FORWARDED = (signal.SIGHUP, signal.SIGUSR1)


@dataclass(slots=True)
class _Slot:
    """One worker's place (1..N): its current process and its restart history."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0  # consecutive short-lived runs
    restarts: int = 0
    stop_code: int | None = None  # how it exited once the supervisor was stopping


class Supervisor:
    """Runs N worker slots until a stop signal or a worker that keeps failing alone."""

    def __init__(
        self,
        command: list[str],
        listeners: tuple[Listener, ...],
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
        self.listeners, self.count = listeners, count  # their ports reserved (start.py)
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
            *(arg for item in self.listeners for arg in ("--worker-listen", item.spec)),
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
        handover = Handover(
            internal_token=self.token,
            internal_ports=self.internal_ports,
            sibling_listeners=(self.admin_bound,) if self.admin_bound else (),
            admin_socket=self.admin_socket(slot.index) if self.admin_dir is not None else None,
        )
        proc.stdin.write(handover.line())
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
