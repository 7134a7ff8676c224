"""Lifecycle: start-up facts and graceful shutdown.

- Learns our real listening address once mitmproxy is up (``--listen 127.0.0.1:0`` binds a port
  only then) so the guard can refuse the proxy itself, and logs ``proxy_started``, the event
  scripts and tests wait on.
- Counts HTTP exchanges in flight so a shutdown can wait for exactly those, not for idle
  keep-alive connections; while draining, responses carry ``Connection: close``.
"""

from __future__ import annotations

import asyncio

from mitmproxy import ctx, http

from hookwall import logs
from hookwall.proxy import eventloop
from hookwall.proxy.runtime import Runtime

_COUNTED = "hookwall.inflight"
CLOSE_AFTER = "hookwall.close"  # set on a flow whose connection should close after it


class Lifecycle:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        # Facts other parts add to proxy_started (e.g. the admin listener's address).
        self.started_fields: dict[str, object] = {}

    def running(self) -> None:
        ps = ctx.master.addons.get("proxyserver")
        listen = [(host, port) for host, port, *_ in ps.listen_addrs()]
        for host, port in listen:
            self.runtime.self_addresses.add_listener(host, port)
        self.runtime.listen_addrs[:] = listen
        policy = self.runtime.policy
        logs.get_logger().info(
            "proxy_started",
            listen=[f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in listen],
            policy=list(policy.sources),
            rules=len(policy.rules),
            dns_servers=self.runtime.resolver.servers,
            ca_cert=str(ctx.options.confdir) + "/mitmproxy-ca-cert.pem",
            event_loop=eventloop.running_loop_name(),
            **self.started_fields,
        )

    # -- in-flight accounting -------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata[_COUNTED] = True
        self.inflight += 1
        self._idle.clear()

    def response(self, flow: http.HTTPFlow) -> None:
        if self.draining or flow.metadata.get(CLOSE_AFTER):
            flow.response.headers["Connection"] = "close"  # type: ignore[union-attr]
        self._done(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._done(flow)

    def _done(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.pop(_COUNTED, False):
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()

    async def drained(self) -> None:
        """Return once no exchange is in flight (callers bound this with a timeout)."""
        self.draining = True
        await self._idle.wait()
