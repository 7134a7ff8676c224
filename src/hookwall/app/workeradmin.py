"""The admin endpoint of ``hookwall run --workers N``: the supervisor's, for every worker.

The supervisor serves ``--admin-listen`` itself (it outlives every worker, so the endpoint
stays up while one restarts, and a taken admin port stops the start at once). Each worker
serves its own ``/readyz`` and ``/metrics`` on a unix socket in a directory only this user
can enter; every scrape asks all of them at once, each with a short timeout, so one busy,
stopped or dead worker costs a scrape at most that long:

- ``/readyz``: 200 only when every worker answers ready; else 503 naming each one that is
  not (``worker 2: not answering``, ``worker 1: starting``, ...); 503 ``draining`` once the
  supervisor is stopping.
- ``/metrics``: the workers' series combined (``metricsmerge``), with ``hookwall_workers``
  and ``hookwall_worker_up{worker="k"}``.
- ``/healthz``: 200 while the supervisor runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from hookwall.app.admin import AdminApp, AdminResponse, Health
from hookwall.deliveries.metricsmerge import render_merged

__all__ = ["READY_TIMEOUT", "SCRAPE_TIMEOUT", "WorkersAdmin", "fetch"]

READY_TIMEOUT = 1.0  # seconds a worker has to answer /readyz
SCRAPE_TIMEOUT = 2.0  # ... and /metrics
_MAX_ANSWER = 16 * 1024 * 1024


async def fetch(
    path: str, target: str, seconds: float, accept: str = "text/plain"
) -> tuple[int, bytes] | None:
    """GET ``target`` from the admin server on the unix socket ``path``; None if it did not
    answer in time (not running, stopped, busy)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(seconds):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: worker\r\nAccept: {accept}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            answer = await reader.read(_MAX_ANSWER)
            while chunk := await reader.read(_MAX_ANSWER):
                answer += chunk
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        return None


class WorkersAdmin:
    """Routing as ``AdminApp`` (404, 405, the /metrics token); /readyz and /metrics ask the
    workers (``handle`` is a coroutine function: ``AdminServer`` awaits it)."""

    def __init__(
        self, sockets: Mapping[int, str], token: str | None, stopping: Callable[[], bool]
    ) -> None:
        self.sockets = dict(sockets)  # worker index -> its admin socket
        self.stopping = stopping
        self._routes = AdminApp(Health(listening=lambda: True), lambda _: (b"", ""), token)

    async def handle(self, method: str, target: str, headers: dict[str, str]) -> AdminResponse:
        path = target.split("?", 1)[0]
        routed = self._routes.handle(method, target, headers)
        if routed.status != 200 or path == "/healthz":
            return routed
        if path == "/readyz":
            return await self.readiness()
        return await self.metrics(headers.get("accept"))

    async def _ask(self, target: str, seconds: float) -> dict[int, tuple[int, bytes] | None]:
        answers = await asyncio.gather(
            *(fetch(path, target, seconds) for path in self.sockets.values())
        )
        return dict(zip(self.sockets, answers, strict=True))

    async def readiness(self) -> AdminResponse:
        if self.stopping():
            return AdminResponse(503, b"draining\n")
        problems = []
        for index, answer in sorted((await self._ask("/readyz", READY_TIMEOUT)).items()):
            if answer is None:
                problems.append(f"worker {index}: not answering")
            elif answer[0] != 200:
                why = answer[1].decode("utf-8", "replace").strip() or str(answer[0])
                problems.append(f"worker {index}: {why}")
        if problems:
            return AdminResponse(503, ("not ready: " + "; ".join(problems) + "\n").encode())
        return AdminResponse(200, f"ready ({len(self.sockets)} workers)\n".encode())

    async def metrics(self, accept: str | None) -> AdminResponse:
        answers = await self._ask("/metrics", SCRAPE_TIMEOUT)
        texts = []
        up: dict[int, bool] = {}
        for index, answer in answers.items():
            up[index] = answer is not None and answer[0] == 200
            if answer is not None and up[index]:
                with contextlib.suppress(UnicodeDecodeError):
                    texts.append(answer[1].decode())
        body, content_type = render_merged(texts, up, accept)
        return AdminResponse(200, body, content_type)
