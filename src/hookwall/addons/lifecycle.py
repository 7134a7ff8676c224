"""Lifecycle: learn our real listening address once mitmproxy is up, and say so in the log.

The guard refuses destinations that are the proxy itself; with ``--listen 127.0.0.1:0`` the
port is only known after binding. The ``proxy_started`` event is what scripts and tests wait on.
"""

from __future__ import annotations

from mitmproxy import ctx

from hookwall import logs
from hookwall.proxy.runtime import Runtime


class Lifecycle:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def running(self) -> None:
        ps = ctx.master.addons.get("proxyserver")
        listen = [(host, port) for host, port, *_ in ps.listen_addrs()]
        for host, port in listen:
            self.runtime.self_addresses.add_listener(host, port)
        policy = self.runtime.policy
        logs.get_logger().info(
            "proxy_started",
            listen=[f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in listen],
            policy=list(policy.sources),
            rules=len(policy.rules),
            dns_servers=self.runtime.resolver.servers,
            ca_cert=str(ctx.options.confdir) + "/mitmproxy-ca-cert.pem",
        )
