"""Operations around one running proxy: hot reload, the admin listener, live metrics.

``serve()`` creates one ``Operations``, starts it before the proxy runs (so the admin
address is in the ``proxy_started`` event), marks it draining on SIGTERM (``/readyz`` turns
503 at once) and stops it when the proxy is done.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import connection
from mitmproxy.master import Master

from hookwall.access.decide import is_loopback_listen, listen_refusal, sender_problem
from hookwall.app.admin import AdminApp, AdminServer, Health
from hookwall.app.reload import WATCH_INTERVAL, PolicyGenerations, PolicyReloader
from hookwall.core.listenerrors import cannot_listen
from hookwall.deliveries import logs
from hookwall.deliveries.metrics import LiveSources, Metrics
from hookwall.flow.runtime import Runtime
from hookwall.pipeline import Pipeline
from hookwall.policy import Policy

__all__ = ["DEFAULT_ADMIN_LISTEN", "ClientCounter", "Operations", "OpsConfig"]

DEFAULT_ADMIN_LISTEN = ("127.0.0.1", 9090)


@dataclass(frozen=True, slots=True)
class OpsConfig:
    policy_path: Path | None = None  # watched for changes; None: the built-in policy (SIGHUP only)
    admin_listen: tuple[str, int] | None = None  # None: no admin listener
    # Listeners of this hookwall served by another process (the --workers supervisor's admin
    # listener, for every worker): never a destination either.
    sibling_listeners: tuple[tuple[str, int], ...] = ()
    admin_token: str | None = None  # required as a bearer token for /metrics
    # --workers N: this worker's /readyz and /metrics for its supervisor (workeradmin.py)
    admin_socket: str | None = None
    dns_servers: tuple[tuple[str, int], ...] = ()  # --dns-server, which overrides dns.servers
    allow_unauthenticated: bool = False  # --allow-unauthenticated
    watch_interval: float = WATCH_INTERVAL


def config_dir(config: OpsConfig) -> str:
    """The directory of the worker's admin socket (for error messages)."""
    return str(Path(config.admin_socket).parent) if config.admin_socket else ""


class ClientCounter:
    """Sender connections open (a mitmproxy addon, last in the chain: refusals are known)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.open: set[str] = set()

    def client_connected(self, client: connection.Client) -> None:
        refused = bool(client.error)
        self.metrics.client_connected(refused)
        if not refused:
            self.open.add(client.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self.open.discard(client.id)


class Operations:
    def __init__(
        self,
        config: OpsConfig,
        runtime: Runtime,
        master: Master,
        pipeline: Pipeline,
        *,
        data_dir: Path,
        listen_hosts: tuple[str, ...],
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.master = master
        self.pipeline = pipeline
        self.metrics = metrics
        self.listen_hosts = listen_hosts
        self.health = Health(listening=lambda: bool(runtime.listen_addrs))
        self.clients = ClientCounter(metrics)
        self.generations = PolicyGenerations(runtime)
        self.reloader = PolicyReloader(
            runtime,
            source=config.policy_path,
            options=master.options,
            data_dir=data_dir,
            metrics=metrics,
            dns_servers=config.dns_servers,
            vet=self._vet,
            generations=self.generations,
        )
        self.reloader.on_swapped.append(pipeline.passthrough.reloaded)
        self.admin: AdminServer | None = None
        if config.admin_listen is not None:
            app = AdminApp(self.health, metrics.render, config.admin_token)
            self.admin = AdminServer(app, *config.admin_listen)
        self.worker_admin: AdminServer | None = None
        if config.admin_socket is not None:  # a private directory: no token needed
            app = AdminApp(self.health, metrics.render)
            self.worker_admin = AdminServer(app, "", 0, path=config.admin_socket)
        metrics.sources = LiveSources(
            limiter_snapshot=lambda: runtime.limiter.snapshot(limit=1_000_000),
            requests_in_flight=lambda: pipeline.lifecycle.inflight,
            client_connections=lambda: len(self.clients.open),
        )
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind the admin listener (exit if it cannot), then watch the policy and SIGHUP."""
        self.master.addons.add(self.clients, self.generations)
        admin = None
        if self.admin is not None:
            try:
                admin = await self.admin.start()
            except OSError as exc:
                host, port = self.config.admin_listen or DEFAULT_ADMIN_LISTEN
                where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                raise SystemExit(cannot_listen("admin", where, exc)) from None
            host = self.config.admin_listen[0] if self.config.admin_listen else ""
            if self.config.admin_token is None and not is_loopback_listen(host):
                logs.get_logger().warning(
                    "admin_unauthenticated",
                    admin=admin,
                    message="/metrics is served without a bearer token on a non-loopback "
                    "address; set HOOKWALL_ADMIN_TOKEN, or keep the port behind a firewall",
                )
        self.pipeline.lifecycle.started_fields["admin"] = admin
        # The loop guard: no request through the proxy may reach the admin listener.
        if self.admin is not None:
            self.runtime.self_addresses.add_listener(self.admin.host, self.admin.port)
        for host, port in self.config.sibling_listeners:
            self.runtime.self_addresses.add_listener(host, port)
        if self.worker_admin is not None:
            try:
                await self.worker_admin.start()
            except OSError as exc:
                raise SystemExit(
                    f"hookwall: cannot serve the supervisor's admin socket {exc.filename}: "
                    f"{exc.strerror or exc}; check that {config_dir(self.config)} is writable"
                ) from None
        await self.reloader.prime()
        self.metrics.policy_applied(len(self.runtime.policy.rules), reload=False)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload, "sighup")
        if self.config.policy_path is not None:
            self._spawn(self.reloader.watch(self.config.watch_interval))

    def draining(self) -> None:
        """SIGTERM: not ready any more (load balancers stop sending), still alive."""
        self.health.draining = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        if self.admin is not None:
            await self.admin.close()
        if self.worker_admin is not None:
            await self.worker_admin.close()

    def _spawn_reload(self, trigger: str) -> None:
        self._spawn(self.reloader.reload(trigger))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _vet(self, policy: Policy) -> list[str]:
        """What this process must refuse beyond what the loader checks."""
        problems = []
        default_sender = self.runtime.default_sender
        missing = sender_problem(default_sender, policy)
        if missing is not None:
            problems.append(
                f"{self.reloader.path}: senders: the new policy drops the sender "
                f"{default_sender!r} this process serves as (--sender); keep it, or restart "
                "with another --sender"
            )
        for host in self.listen_hosts:
            if listen_refusal(host, bool(policy.senders), self.config.allow_unauthenticated):
                problems.append(
                    f"{self.reloader.path}: senders: the new policy defines no senders, but "
                    f"hookwall listens on {host} (not loopback) and would become an open "
                    "proxy; keep the senders, or restart with --allow-unauthenticated"
                )
                break
        return problems
