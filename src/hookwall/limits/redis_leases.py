"""The slots this replica holds in Redis, and the renewal of their leases.

A slot in Redis is a member of the destination's sorted set scored by its lease expiry. The
replica holding it renews the lease every ``lease / 3``; a replica that dies (kill -9, a lost
node) stops renewing and its slots come back after at most ``lease``. While it holds nothing,
the renewal task pings Redis instead, so an outage is noticed while idle too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, KeysView

from hookwall.limits.backend import BackendUnavailable, describe
from hookwall.limits.redis_pipeline import Arg
from hookwall.limits.redis_scripts import Scripts

__all__ = ["Leases"]

log = logging.getLogger(__name__)


class Leases:
    def __init__(self, scripts: Scripts, *, on_failure: Callable[[BaseException], None]) -> None:
        self._scripts = scripts
        self._on_failure = on_failure
        self._held: dict[str, dict[str, None]] = {}  # key -> slot ids, in admission order
        self._renewer: asyncio.Task[None] | None = None

    def hold(self, key: str, slot_id: str) -> None:
        self._held.setdefault(key, {})[slot_id] = None

    def drop(self, key: str, slot_id: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.pop(slot_id, None)
            if not held:
                del self._held[key]

    def count(self, key: str) -> int:
        return len(self._held.get(key, ()))

    def keys(self) -> KeysView[str]:
        return self._held.keys()

    def start(self) -> None:
        """Start renewing (and idle health pings); needs a running loop."""
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._scripts.lease / 3)
            try:
                await self._renew()
            except BackendUnavailable as exc:
                self._on_failure(exc)
            except Exception as exc:  # keep renewing
                log.exception("renewing slot leases in Redis failed")
                self._on_failure(BackendUnavailable(describe(exc)))

    async def _renew(self) -> None:
        held: dict[str, list[str]] = {key: list(ids) for key, ids in self._held.items() if ids}
        if not held:  # nothing to renew: still notice an outage while idle
            await self._scripts.ping()
            return
        scripts = self._scripts
        lease_ms = int(scripts.lease * 1000)
        calls = []
        for key, ids in held.items():
            args: list[Arg] = [lease_ms, scripts.ttl(scripts.config_of(key)), *ids]
            calls.append(scripts.eval("refresh", scripts.keys(key), args))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for key, result in zip(held, results, strict=True):
            if isinstance(result, BaseException):
                raise BackendUnavailable(describe(result))
            if result:  # expired while held (a long stall, or Redis lost its data)
                log.warning("%d slot lease(s) at %s expired while held", len(result), key)
                mine = self._held.get(key, {})
                for slot_id in result:
                    mine.pop(str(slot_id), None)
