"""An embedded, trimmed mitmproxy Master: only what an egress proxy needs, plus our addons.

mitmproxy's DumpMaster loads ~35 addons (replay, scripting, onboarding on ``mitm.it``, ...)
that cost close to half the throughput and widen the attack surface; we load five of its
addons and ours. The order matters: our hooks must run before mitmproxy's TLS config (SNI) and
the guard must read ``X-Hookwall-*`` headers before HopHeaders strips them.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from hookwall import logs
from hookwall.addons.access import AccessControl
from hookwall.addons.bodycaps import BodyCaps
from hookwall.addons.connections import ConnectionGuard
from hookwall.addons.correlate import Correlation
from hookwall.addons.deadlines import Deadlines
from hookwall.addons.deliverystore import DeliveryStore
from hookwall.addons.exchangelog import ExchangeLog
from hookwall.addons.flood import FloodControl
from hookwall.addons.guard import DestinationGuard
from hookwall.addons.hopheaders import HopHeaders
from hookwall.addons.lifecycle import Lifecycle
from hookwall.addons.redirects import InternalHops, Redirects
from hookwall.addons.retries import Retries
from hookwall.addons.safety import SafetyChecks, forbidden_options_set
from hookwall.addons.signing import RequestSigning
from hookwall.addons.tunnels import PassthroughTunnels
from hookwall.addons.upstreams import UpstreamPool
from hookwall.metrics import Metrics
from hookwall.policy.model import Policy, merge_rule
from hookwall.proxy import connect, crashguard, errorpages, http1guard, typechecks
from hookwall.proxy.bounds import apply_proxy_settings, backstop_timeout
from hookwall.proxy.ca import ensure_ca, upstream_ca_bundle
from hookwall.proxy.dispatch import CachedAddonManager
from hookwall.proxy.operations import Operations, OpsConfig
from hookwall.proxy.runtime import Runtime
from hookwall.proxy.startup import StartupErrors
from hookwall.proxy.sweep import Sweeper
from hookwall.redirects import sites
from hookwall.store import store_path

SNAPSHOT_INTERVAL = 60.0  # seconds between limits_snapshot events


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    listen_host: str
    listen_port: int
    data_dir: Path
    ca: Path | None = None  # an operator-provided CA (--ca) instead of a generated one
    drain_seconds: float = 10.0
    store: bool = True  # the delivery store behind `hookwall logs` (--no-store turns it off)
    ops: OpsConfig = field(default_factory=OpsConfig)  # reload, admin listener (operations.py)


def build_options(config: ProxyConfig, runtime: Runtime) -> dict[str, object]:
    return {
        "mode": ["regular"],  # and the internal listener of hops and retries (Lifecycle)
        "listen_host": config.listen_host,
        "listen_port": config.listen_port,
        "confdir": str(config.data_dir),
        "http2": False,
        "http3": False,
        "websocket": False,
        "rawtcp": False,
        "ssl_insecure": False,
        "ssl_verify_upstream_trusted_ca": str(
            upstream_ca_bundle(config.data_dir, runtime.policy.ca_bundle)
        ),
        # Receiver connections open only once a request (or a passthrough tunnel) is admitted.
        "connection_strategy": "lazy",
        # Nothing larger than the largest per-destination cap is ever buffered.
        "body_size_limit": str(runtime.policy.max_body),
        "tcp_timeout": backstop_timeout(runtime.policy),
        "validate_inbound_headers": True,
    }


class HookwallMaster(Master):
    def __init__(
        self,
        opts: options.Options,
        runtime: Runtime,
        data_dir: Path | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(opts, with_termlog=False)
        # Same dispatch semantics, handlers looked up once per event name (dispatch.py).
        self.options.changed.disconnect(self.addons._configure_all)
        self.addons = CachedAddonManager(self)
        self.guard = DestinationGuard(runtime)
        self.lifecycle = Lifecycle(runtime, self.guard.tunnels)
        self.passthrough = PassthroughTunnels(runtime, self.guard.tunnels)  # after reloads
        sweeper = Sweeper()  # connection and body deadlines, checked four times a second
        self.connections = ConnectionGuard(runtime, self.lifecycle, sweeper)
        # The delivery store (hookwall logs) lives in the data dir; fed by ExchangeLog.
        self.store = DeliveryStore(runtime, data_dir) if data_dir is not None else None
        exchange_log = ExchangeLog(
            self.guard.tunnels,
            self.lifecycle.connection_holds,
            self.store.record if self.store else None,
            metrics.observe_exchange if metrics else None,
        )
        self.lifecycle.on_abandoned.append(exchange_log.abandoned)
        http1guard.on_head_started[:] = [self.connections.head_started]
        http1guard.on_refused[:] = [exchange_log.head_refused]
        crashguard.on_crash[:] = [self.lifecycle.crashed]
        self.addons.add(
            core.Core(),
            SafetyChecks(),
            InternalHops(runtime),  # first: recognises redirect hops hookwall sends itself
            self.lifecycle,  # every exchange begins here; its error verdict is settled here
            self.connections,  # connection caps and deadlines (head, handshake, idle)
            AccessControl(runtime, self.guard.tunnels),  # the rule depends on the sender
            self.guard,
            self.passthrough,
            Correlation(),  # reads X-Hookwall-Replay-Of before HopHeaders strips it
            HopHeaders(),
            BodyCaps(runtime, sweeper),  # before queueing: a body too big or slow never waits
            FloodControl(runtime.limiter, self.lifecycle),
            RequestSigning(),  # after every addon that modifies requests
            Deadlines(self.lifecycle),  # clocks start when the request is admitted
            Redirects(runtime),  # after the slot is returned: a hop may go to the same host
            exchange_log,
            *([self.store] if self.store else []),
            Retries(runtime),  # after the log: each attempt is its own event, in order
            UpstreamPool(runtime, self.lifecycle, self.guard.tunnels),
            self.lifecycle.end,  # last: the exchange is over, everything it holds goes back
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            StartupErrors(),  # a port taken: said in hookwall's flags, exit 1
        )


async def serve(config: ProxyConfig, runtime: Runtime) -> int:
    """Run until SIGTERM/SIGINT, then stop accepting and let in-flight exchanges finish."""
    ensure_ca(config.data_dir, config.ca)
    if follows_same_site(runtime.policy):
        sites.preload()  # the Public Suffix List (0.2 s), not on the first redirect's path
    errorpages.install()
    typechecks.install()
    http1guard.install()
    crashguard.install()
    apply_proxy_settings(runtime.policy)
    opts = options.Options()
    metrics = Metrics()
    master = HookwallMaster(opts, runtime, config.data_dir if config.store else None, metrics)
    master.lifecycle.started_fields["store"] = (
        str(store_path(config.data_dir)) if config.store else None
    )
    connect.install(master.guard.connect_timeout)
    opts.update(**build_options(config, runtime))
    bad = forbidden_options_set(opts)
    if bad:
        raise SystemExit(f"hookwall refuses to run with unsafe mitmproxy options: {bad}")

    ops = Operations(
        config.ops,
        runtime,
        master,
        data_dir=config.data_dir,
        listen_host=config.listen_host,
        metrics=metrics,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def request_stop(signame: str) -> None:
        if stopping.is_set():  # second signal: stop now
            master.shutdown()
            return
        stopping.set()
        ops.draining()
        logs.get_logger().info("proxy_stopping", signal=signame, drain_s=config.drain_seconds)
        tasks.add(loop.create_task(_drain_then_exit(master, config.drain_seconds)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig.name)
    loop.add_signal_handler(signal.SIGUSR1, log_snapshot, runtime, "signal")
    tasks.add(loop.create_task(_snapshots(runtime)))
    await ops.start()
    try:
        await master.run()
    finally:
        await ops.stop()
    logs.get_logger().info("proxy_stopped")
    return 0


def follows_same_site(policy: Policy) -> bool:
    """Whether any destination follows redirects within ``same_site`` (a reload that adds one
    parses the list on its first such redirect)."""
    settings = [policy.defaults, *(merge_rule(policy.defaults, rule) for rule in policy.rules)]
    return any(s.redirects.mode == "follow" and s.redirects.scope == "same_site" for s in settings)


def log_snapshot(runtime: Runtime, why: str) -> None:
    """Queue depths and circuit states per destination (periodic, and on SIGUSR1)."""
    destinations = runtime.limiter.snapshot()
    logs.get_logger().info("limits_snapshot", trigger=why, destinations=destinations)


async def _snapshots(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(SNAPSHOT_INTERVAL)
        log_snapshot(runtime, "periodic")


async def _drain_then_exit(master: HookwallMaster, grace: float) -> None:
    """Close the listener, let exchanges in flight finish (bounded), then stop."""
    ps = master.addons.get("proxyserver")
    try:
        # The public listener closes; the internal one (not among mitmproxy's servers) stays
        # for the hops and retries of the exchanges we wait for.
        await ps.servers.update([])
        logs.get_logger().info("proxy_draining", inflight=master.lifecycle.inflight)
        async with asyncio.timeout(grace):
            await master.lifecycle.drained()
    except TimeoutError:
        logs.get_logger().warning(
            "proxy_drain_timeout", inflight=master.lifecycle.inflight, grace_s=grace
        )
    finally:
        master.shutdown()
