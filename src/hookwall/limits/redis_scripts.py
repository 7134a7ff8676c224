"""The Redis limiter's calls into Redis: the Lua scripts of ``redis_lua`` by SHA (loaded at
start, and again when Redis forgot them: a restart or SCRIPT FLUSH), the keys and arguments
every call takes, and what each reply tells this replica: the destination's shared numbers,
and the transitions its own call made (logged here, so each is logged once, by the replica
whose call made it).

Any Redis error becomes ``BackendUnavailable``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from hookwall.limits import redis_lua
from hookwall.limits.backend import BackendUnavailable, describe
from hookwall.limits.redis_pipeline import Arg, AutoPipeline
from hookwall.limits.settings import LimitConfig
from hookwall.limits.verdicts import EventSink

__all__ = ["SCRIPTS", "TICKET_LEASE", "Scripts", "key_names"]

log = logging.getLogger(__name__)

SCRIPTS = {
    "acquire": redis_lua.ACQUIRE,
    "poll": redis_lua.POLL,
    "finish": redis_lua.FINISH,
    "refresh": redis_lua.REFRESH,
    "inspect": redis_lua.INSPECT,
}
TICKET_LEASE = 2.0  # a waiter not polled for this long leaves the queue
_MAX_KEYS = 10_000  # destinations remembered (config, last shared view)
_SHARED_FIELDS = ("in_flight", "queued", "circuit", "failures")


def key_names(prefix: str, key: str) -> list[str]:
    """The four Redis keys of one destination (see ``redis_lua``); one hash tag, one slot."""
    base = f"{prefix}{{{key}}}:"
    return [base + "state", base + "slots", base + "queue", base + "live"]


class Scripts:
    """Script calls for one replica, with the latest config and shared view per destination."""

    def __init__(
        self, client: Redis, *, prefix: str, lease: float, on_event: EventSink | None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.lease = lease
        self._pipeline = AutoPipeline(client)
        self._on_event = on_event
        self._shas = {
            name: hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            for name, source in SCRIPTS.items()
        }
        # The config of the latest acquire per key: polls, reports and renewals use it.
        self._configs: OrderedDict[str, LimitConfig] = OrderedDict()
        self.shared: OrderedDict[str, dict[str, Any]] = OrderedDict()  # last view per key

    async def ping(self) -> None:
        try:
            await cast(Awaitable[Any], self.client.ping())
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(describe(exc)) from exc

    async def load(self) -> None:
        """Ping and load the scripts; BackendUnavailable when Redis cannot be used."""
        try:
            await cast(Awaitable[Any], self.client.ping())
            for name, source in SCRIPTS.items():
                sha = await self.client.script_load(source)
                if sha != self._shas[name]:
                    raise BackendUnavailable(f"Redis hashed the {name} script unexpectedly")
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(describe(exc)) from exc

    # -- per destination ---------------------------------------------------------------------

    def remember(self, key: str, config: LimitConfig) -> None:
        self._configs[key] = config
        self._configs.move_to_end(key)
        while len(self._configs) > _MAX_KEYS:
            self._configs.popitem(last=False)

    def config_of(self, key: str) -> LimitConfig:
        return self._configs.get(key) or LimitConfig()

    def keys(self, key: str) -> list[str]:
        return key_names(self.prefix, key)

    def args(self, config: LimitConfig, extra: list[Arg]) -> list[Arg]:
        """ARGV of the admission scripts: the limits (in ms), then the script's own."""
        rate = 0.0 if config.rate is None else config.rate / 1000.0
        lease_ms = int(self.lease * 1000)
        return [
            config.concurrency,
            config.queue,
            round(config.queue_timeout * 1000.0, 3),
            rate,
            config.bucket_size or 0,
            round(config.retry_after_max * 1000.0, 3),
            config.circuit_failures,
            round(config.circuit_cooloff * 1000.0, 3),
            lease_ms,
            int(TICKET_LEASE * 1000),
            self.ttl(config),
            *extra,
        ]

    def ttl(self, config: LimitConfig) -> int:
        """How long an idle destination's state must outlive its last use (ms)."""
        refill = 0.0
        if config.rate is not None and config.bucket_size is not None:
            refill = config.bucket_size / config.rate
        seconds = max(
            2 * self.lease,
            config.queue_timeout,
            config.retry_after_max,
            config.circuit_cooloff,
            refill,
        )
        return int(min(seconds, 7 * 86400.0) * 1000) + 60_000

    # -- calls -------------------------------------------------------------------------------

    async def run(
        self, name: str, key: str, config: LimitConfig, extra: list[Arg]
    ) -> dict[str, Any]:
        """One admission script call for ``key``; its reply, already observed."""
        raw = await self.eval(name, self.keys(key), self.args(config, extra))
        try:
            reply = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise BackendUnavailable(f"unexpected reply from Redis: {raw!r:.100}") from exc
        if not isinstance(reply, dict):
            raise BackendUnavailable(f"unexpected reply from Redis: {raw!r:.100}")
        self.observe(key, reply)
        return reply

    async def eval(self, name: str, keys: list[str], args: list[Arg]) -> Any:
        sha = self._shas[name]
        try:
            try:
                return await self._pipeline.call(sha, keys, args)
            except NoScriptError:  # Redis restarted (or SCRIPT FLUSH): load it again
                await self.client.script_load(SCRIPTS[name])
                return await self._pipeline.call(sha, keys, args)
        except (RedisError, OSError) as exc:
            raise BackendUnavailable(describe(exc)) from exc

    def observe(self, key: str, reply: dict[str, Any]) -> None:
        """Remember the shared numbers and log the transitions this call made."""
        shared: dict[str, Any] = {k: reply[k] for k in _SHARED_FIELDS if k in reply}
        if shared:
            self.shared[key] = shared
            self.shared.move_to_end(key)
            while len(self.shared) > _MAX_KEYS:
                self.shared.popitem(last=False)
        events = reply.get("events")
        if not isinstance(events, list) or self._on_event is None:
            return
        for item in events:
            try:
                name, fields = item[0], item[1] if isinstance(item[1], dict) else {}
                self._on_event(key, str(name), _rounded(fields))
            except Exception:
                log.exception("on_event failed for %s", key)


def _rounded(fields: dict[str, Any]) -> dict[str, object]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}
