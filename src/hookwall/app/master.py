"""An embedded, trimmed mitmproxy Master: only what an egress proxy needs, plus our addons.

mitmproxy's DumpMaster loads ~35 addons (replay, scripting, onboarding on ``mitm.it``, ...)
that cost close to half the throughput and widen the attack surface; we load four of its
addons and ours, in the order ``hookwall.pipeline`` builds and states (``ORDER``).
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import options
from mitmproxy import version as mitmproxy_version
from mitmproxy.master import Master

from hookwall.app.ca import ensure_ca, upstream_ca_bundle
from hookwall.app.operations import Operations, OpsConfig
from hookwall.core.listen import Listener
from hookwall.deliveries import logs
from hookwall.deliveries.metrics import Metrics
from hookwall.deliveries.store import store_path
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.safety import forbidden_options_set
from hookwall.mitm.bounds import apply_proxy_settings, backstop_timeout
from hookwall.mitm.dispatch import CachedAddonManager
from hookwall.mitm.install import install_patches
from hookwall.mitm.startup import StartupErrors
from hookwall.pipeline import build_pipeline, order_violations
from hookwall.policy.model import Policy, merge_rule
from hookwall.redirects import sites

SNAPSHOT_INTERVAL = 60.0  # seconds between limits_snapshot events


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    listeners: tuple[Listener, ...]
    data_dir: Path
    ca: Path | None = None  # an operator-provided CA (--ca) instead of a generated one
    drain_seconds: float = 10.0
    store: bool = True  # the delivery store behind `hookwall logs` (--no-store turns it off)
    ops: OpsConfig = field(default_factory=OpsConfig)  # reload, admin listener (operations.py)


def build_options(config: ProxyConfig, runtime: Runtime) -> dict[str, object]:
    return {
        # One mitmproxy mode per listener; the internal one of hops and retries is Lifecycle's.
        "mode": [listener.spec for listener in config.listeners],
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
        pipeline = build_pipeline(runtime, data_dir, metrics)
        broken = order_violations(pipeline.addons)
        if broken:  # the chain is a stated contract (pipeline.ORDER): fail closed, not -O
            raise RuntimeError("hookwall's addon chain is out of order: " + "; ".join(broken))
        self.pipeline = pipeline
        self.guard = pipeline.guard
        self.lifecycle = pipeline.lifecycle
        self.passthrough = pipeline.passthrough
        self.connections = pipeline.connections
        self.store = pipeline.store
        # Last: a port taken at start-up is said in hookwall's flags, and exits 1.
        self.addons.add(*pipeline.addons, StartupErrors())


async def serve(config: ProxyConfig, runtime: Runtime) -> int:
    """Run until SIGTERM/SIGINT, then stop accepting and let in-flight exchanges finish."""
    ensure_ca(config.data_dir, config.ca)
    if follows_same_site(runtime.policy):
        sites.preload()  # the Public Suffix List (0.2 s), not on the first redirect's path
    apply_proxy_settings(runtime.policy)
    opts = options.Options()
    metrics = Metrics(mitmproxy_version=mitmproxy_version.VERSION)
    master = HookwallMaster(opts, runtime, config.data_dir if config.store else None, metrics)
    master.lifecycle.started_fields["store"] = (
        str(store_path(config.data_dir)) if config.store else None
    )
    install_patches(master.pipeline)
    opts.update(**build_options(config, runtime))
    bad = forbidden_options_set(opts)
    if bad:
        raise SystemExit(f"hookwall refuses to run with unsafe mitmproxy options: {bad}")

    ops = Operations(
        config.ops,
        runtime,
        master,
        master.pipeline,
        data_dir=config.data_dir,
        listen_hosts=tuple(listener.host for listener in config.listeners),
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
