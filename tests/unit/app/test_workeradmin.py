"""The supervisor's admin endpoint over real workers' admin servers on unix sockets (no
proxy): readiness of all, metrics of all, the token, a worker that is not there."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hookwall.app.admin import AdminApp, AdminServer, Health
from hookwall.app.workeradmin import WorkersAdmin
from hookwall.deliveries.metrics import Metrics


def worker_metrics(requests: int) -> Metrics:
    metrics = Metrics(process=False)
    for _ in range(requests):
        metrics.observe_exchange({"decision": "allow", "reason": None, "status": 204})
    return metrics


def test_every_worker_is_asked_and_a_missing_one_is_named(tmp_path: Path) -> None:
    async def scenario() -> None:
        health = [Health(listening=lambda: True), Health(listening=lambda: False)]
        servers = [
            AdminServer(AdminApp(h, worker_metrics(n).render), "", 0, path=str(tmp_path / f"{i}"))
            for i, (h, n) in enumerate(zip(health, (2, 3), strict=True), start=1)
        ]
        for server in servers:
            await server.start()
        sockets = {1: str(tmp_path / "1"), 2: str(tmp_path / "2"), 3: str(tmp_path / "3")}
        stopping = False
        admin = WorkersAdmin(sockets, "s3cret", lambda: stopping)
        try:
            ready = await admin.handle("GET", "/readyz", {})
            assert ready.status == 503
            assert ready.body == b"not ready: worker 2: starting; worker 3: not answering\n"
            unauthorised = await admin.handle("GET", "/metrics", {})
            assert unauthorised.status == 401
            scraped = await admin.handle("GET", "/metrics", {"authorization": "Bearer s3cret"})
            text = scraped.body.decode()
            assert (
                'hookwall_requests_total{decision="allow",reason="none",status_class="2xx"} 5.0'
                in text
            )
            assert 'hookwall_worker_up{worker="3"} 0.0' in text
            assert 'hookwall_worker_up{worker="2"} 1.0' in text
            health[1].listening = lambda: True
            admin.sockets.pop(3)
            ready = await admin.handle("GET", "/readyz", {})
            assert (ready.status, ready.body) == (200, b"ready (2 workers)\n")
            stopping = True
            assert (await admin.handle("GET", "/readyz", {})).body == b"draining\n"
            assert (await admin.handle("GET", "/healthz", {})).status == 200
        finally:
            for server in servers:
                await server.close()

    asyncio.run(scenario())
