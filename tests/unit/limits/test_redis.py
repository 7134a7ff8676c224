"""The Redis-backed limiter against a real redis-server: two ``RedisLimiter`` instances play
two replicas (each has its own connection pool, replica id and pollers, as in two processes).

Synchronisation is on the limiters' own state and on ``inspect`` (Redis's view); the only
sleeps are the leases, pauses and cool-offs under test, kept short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hookwall.limits import DestinationLimiter, LimitConfig, Rejected
from hookwall.limits.backend import BackendUnavailable
from hookwall.limits.fallback import BackendLimiter
from hookwall.limits.redis_backend import RedisLimiter
from tests.support.redisserver import RedisServer, needs_redis

Events = list[tuple[str, str, dict[str, object]]]


pytestmark = needs_redis


def client(url: str, timeout: float = 0.5) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def replicas(url: str, events: Events | None = None, lease: float = 1.0) -> list[RedisLimiter]:
    def sink(key: str, event: str, fields: dict[str, object]) -> None:
        if events is not None:
            events.append((key, event, fields))

    return [RedisLimiter(client(url), on_event=sink, lease=lease) for _ in range(2)]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


async def until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 5.0
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def shared_view(limiter: RedisLimiter, key: str) -> dict[str, object]:
    return await limiter.inspect(key)


async def start(*limiters: RedisLimiter) -> None:
    for limiter in limiters:
        await limiter.check()
        limiter.start()


async def close(*limiters: RedisLimiter) -> None:
    for limiter in limiters:
        await limiter.aclose()


# -- one cap across replicas ------------------------------------------------------------------


def test_two_replicas_share_one_concurrency_cap_in_fifo_order(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = replicas(redis_url)
        await start(a, b)
        config = LimitConfig(concurrency=2, queue=10, queue_timeout=5)
        held = [await a.acquire("k", config), await b.acquire("k", config)]
        order: list[str] = []

        async def wait(limiter: RedisLimiter, name: str) -> None:
            slot = await limiter.acquire("k", config)
            order.append(name)
            held.append(slot)

        # Queued alternately on the two replicas: a1 b1 a2 b2.
        tasks = []
        for name, limiter in (("a1", a), ("b1", b), ("a2", a), ("b2", b)):
            tasks.append(asyncio.create_task(wait(limiter, name)))

            def all_queued(count: int = len(tasks)) -> bool:
                return a.queued("k") + b.queued("k") == count

            await until(all_queued, "queued")
        view = await shared_view(a, "k")
        assert (view["in_flight"], view["queued"]) == (2, 4)
        for expected in (["a1"], ["a1", "b1"], ["a1", "b1", "a2"], ["a1", "b1", "a2", "b2"]):
            held.pop(0).release()  # one slot frees: exactly the next in line gets it

            def admitted(expected: list[str] = expected) -> bool:
                return order == expected

            await until(admitted, f"admission of {expected[-1]}")
            assert (await shared_view(a, "k"))["in_flight"] == 2
        await asyncio.gather(*tasks)
        for slot in held:
            slot.release()
        await until(lambda: not a.in_flight("k") and not b.in_flight("k"), "released")
        await asyncio.sleep(0.05)
        assert (await shared_view(b, "k"))["in_flight"] == 0
        await close(a, b)

    run(scenario)


def test_queue_is_bounded_across_replicas_and_times_out(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = replicas(redis_url)
        await start(a, b)
        config = LimitConfig(concurrency=1, queue=1, queue_timeout=0.3)
        holder = await a.acquire("k", config)
        waiter = asyncio.create_task(b.acquire("k", config))
        await until(lambda: b.queued("k") == 1, "queued on b")
        with pytest.raises(Rejected) as full:
            await a.acquire("k", config)  # the single queue place is b's
        assert full.value.reason == "queue-full" and full.value.retry_after >= 1
        started = time.monotonic()
        with pytest.raises(Rejected) as timed_out:
            await waiter
        assert timed_out.value.reason == "queue-timeout"
        assert 0.2 < time.monotonic() - started < 1.0  # the queue timeout bounds the poll
        holder.release()
        await close(a, b)

    run(scenario)


def test_a_cancelled_waiter_leaves_the_shared_queue(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = replicas(redis_url)
        await start(a, b)
        config = LimitConfig(concurrency=1, queue=5, queue_timeout=5)
        holder = await a.acquire("k", config)
        gone = asyncio.create_task(b.acquire("k", config))
        await until(lambda: b.queued("k") == 1, "queued")
        gone.cancel()
        await until(lambda: b.queued("k") == 0, "left")
        assert (await shared_view(a, "k"))["queued"] == 0
        holder.release()
        (await a.acquire("k", config)).release()  # nobody ahead: admitted at once
        await close(a, b)

    run(scenario)


def test_slots_of_a_dead_replica_come_back_after_the_lease(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = replicas(redis_url, lease=1.0)
        await start(b)
        await a.check()  # "a" never renews: as if its process were killed
        config = LimitConfig(concurrency=2, queue=5, queue_timeout=5)
        await a.acquire("k", config)
        await a.acquire("k", config)
        started = time.monotonic()
        slot = await b.acquire("k", config)  # waits for a lease to run out
        waited = time.monotonic() - started
        assert 0.7 < waited < 2.0, waited
        slot.release()
        await close(a, b)

    run(scenario)


def test_a_held_slot_outlives_its_lease_while_its_replica_renews_it(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = replicas(redis_url, lease=0.6)
        await start(a, b)
        config = LimitConfig(concurrency=1, queue=5, queue_timeout=0.2)
        slot = await a.acquire("k", config)
        await asyncio.sleep(1.5)  # 2.5 leases
        with pytest.raises(Rejected):
            await b.acquire("k", config)
        slot.release()
        await close(a, b)

    run(scenario)


# -- rate, pauses, circuit --------------------------------------------------------------------


def test_rate_limit_is_one_bucket_for_all_replicas(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = replicas(redis_url)
        await start(a, b)
        config = LimitConfig(rate=5, burst=2, queue=10, queue_timeout=0.1)
        (await a.acquire("r", config)).release()
        (await b.acquire("r", config)).release()  # the burst of 2 is spent, across both
        with pytest.raises(Rejected) as rejected:
            await a.acquire("r", config)
        assert rejected.value.reason == "rate-limited"
        # Waiting is allowed when the token comes in time: ~200 ms for the next one.
        patient = LimitConfig(rate=5, burst=2, queue=10, queue_timeout=1)
        started = time.monotonic()
        (await b.acquire("r", patient)).release()
        assert 0.05 < time.monotonic() - started < 0.6
        await close(a, b)

    run(scenario)


def test_receiver_backpressure_pauses_every_replica(redis_url: str) -> None:
    async def scenario() -> None:
        events: Events = []
        a, b = replicas(redis_url, events)
        await start(a, b)
        config = LimitConfig(queue_timeout=0.3, retry_after_max=30)
        slot = await a.acquire("p", config)
        a.report("p", "success", status=503, retry_after=20)
        slot.release()
        await until(lambda: any(e[1] == "destination_paused" for e in events), "paused event")
        with pytest.raises(Rejected) as rejected:
            await b.acquire("p", config)
        assert rejected.value.reason == "queue-timeout"
        assert 10 <= rejected.value.retry_after <= 20
        assert [e[1] for e in events].count("destination_paused") == 1
        await close(a, b)

    run(scenario)


def test_circuit_opens_for_every_replica_and_one_probe_closes_it(redis_url: str) -> None:
    async def scenario() -> None:
        events: Events = []
        a, b = replicas(redis_url, events)
        await start(a, b)
        config = LimitConfig(circuit_failures=2, circuit_cooloff=0.4, queue_timeout=5)
        blocker = LimitConfig(concurrency=1, circuit_failures=2, circuit_cooloff=0.4)
        for limiter in (a, b):  # one failure on each replica: 2 in a row for the destination
            slot = await limiter.acquire("c", config)
            limiter.report("c", "failure", status=500)
            slot.release()
        await until(lambda: any(e[1] == "circuit_opened" for e in events), "opened")
        for limiter in (a, b):
            with pytest.raises(Rejected) as rejected:
                await limiter.acquire("c", config)
            assert rejected.value.reason == "circuit-open"
        assert [r["circuit"] for r in a.snapshot() if r["key"] == "c"] == ["open"]
        await asyncio.sleep(0.45)
        probe = await b.acquire("c", blocker)  # the single probe, across both replicas
        for limiter in (a, b):
            with pytest.raises(Rejected) as rejected:
                await limiter.acquire("c", config)
            assert rejected.value.reason == "circuit-open"
        b.report("c", "success", status=200)
        probe.release()
        await until(lambda: any(e[1] == "circuit_closed" for e in events), "closed")
        (await a.acquire("c", config)).release()
        names = [e[1] for e in events]
        assert names.count("circuit_opened") == 1
        assert names.count("circuit_half_open") == 1
        assert names.count("circuit_closed") == 1
        await close(a, b)

    run(scenario)


def test_opening_the_circuit_refuses_the_waiters_of_every_replica(redis_url: str) -> None:
    async def scenario() -> None:
        a, b = replicas(redis_url)
        await start(a, b)
        config = LimitConfig(concurrency=1, circuit_failures=1, circuit_cooloff=5)
        holder = await a.acquire("c", config)
        waiter = asyncio.create_task(b.acquire("c", config))
        await until(lambda: b.queued("c") == 1, "queued")
        a.report("c", "failure", status=502)
        holder.release()
        with pytest.raises(Rejected) as rejected:
            await waiter
        assert rejected.value.reason == "circuit-open"
        await close(a, b)

    run(scenario)


# -- when Redis is down -----------------------------------------------------------------------


def test_redis_down_falls_back_to_local_limits_and_comes_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    statuses: list[tuple[str, dict[str, object]]] = []

    async def scenario() -> None:
        backend = BackendLimiter(
            RedisLimiter(client(server.url), lease=1.0),
            DestinationLimiter(),
            backend=server.url,
            on_status=lambda level, event, fields: statuses.append((event, fields)),
            check_interval=0.1,
        )
        await backend.start()
        config = LimitConfig(concurrency=1, queue=5, queue_timeout=2)
        (await backend.acquire("k", config)).release()
        assert [e for e, _ in statuses] == ["limits_backend"]
        server.kill()
        slot = await backend.acquire("k", config)  # served by the local limiter
        assert backend.degraded
        degraded = [f for e, f in statuses if e == "limits_backend_degraded"]
        assert len(degraded) == 1 and degraded[0]["on_backend_failure"] == "local"
        slot.release()
        server.start()
        await until(lambda: not backend.degraded, "restored")
        assert statuses[-1][0] == "limits_backend_restored"
        slot = await backend.acquire("k", config)  # Redis again
        assert (await backend.shared.inspect("k"))["in_flight"] == 1
        slot.release()
        await backend.aclose()

    try:
        run(scenario)
    finally:
        server.stop()


def test_redis_down_with_refuse_answers_limits_unavailable(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()

    async def scenario() -> None:
        backend = BackendLimiter(
            RedisLimiter(client(server.url)),
            DestinationLimiter(),
            backend=server.url,
            on_failure="refuse",
            check_interval=0.1,
        )
        await backend.start()
        server.kill()
        with pytest.raises(Rejected) as rejected:
            await backend.acquire("k", LimitConfig())
        assert rejected.value.reason == "limits-unavailable"
        assert rejected.value.retry_after >= 1
        await backend.aclose()

    try:
        run(scenario)
    finally:
        server.stop()


def test_waiters_move_to_the_local_limiter_when_redis_dies(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()

    async def scenario() -> None:
        backend = BackendLimiter(
            RedisLimiter(client(server.url)),
            DestinationLimiter(),
            backend=server.url,
            check_interval=5,
        )
        await backend.start()
        config = LimitConfig(concurrency=1, queue=5, queue_timeout=3)
        holder = await backend.acquire("k", config)
        waiter = asyncio.create_task(backend.acquire("k", config))
        await until(lambda: backend.shared.queued("k") == 1, "queued in Redis")
        server.kill()
        slot = await waiter  # the next poll fails: it waits locally (nobody holds a slot there)
        assert backend.degraded
        slot.release()
        holder.release()
        await backend.aclose()

    try:
        run(scenario)
    finally:
        server.stop()


def test_an_unreachable_redis_at_start_is_a_degraded_start(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")  # never started: nothing listens on its port
    statuses: list[str] = []

    async def scenario() -> None:
        backend = BackendLimiter(
            RedisLimiter(client(server.url)),
            DestinationLimiter(),
            backend=server.url,
            on_status=lambda level, event, fields: statuses.append(event),
        )
        await backend.start()
        assert backend.degraded and statuses == ["limits_backend_degraded"]
        (await backend.acquire("k", LimitConfig())).release()
        await backend.aclose()

    run(scenario)


def test_backend_unavailable_is_raised_by_the_redis_limiter_itself(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")

    async def scenario() -> None:
        limiter = RedisLimiter(client(server.url))
        with pytest.raises(BackendUnavailable):
            await limiter.acquire("k", LimitConfig())
        await limiter.aclose()

    run(scenario)


def test_a_failed_poll_fails_every_waiter_even_one_that_queued_during_it(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter that queues while its destination's poll is on the wire must hear of that
    poll's failure too (and fall back, or be refused), not wait forever on a poller that
    has stopped."""

    async def scenario() -> None:
        limiter = RedisLimiter(client(redis_url))
        await start(limiter)
        config = LimitConfig(concurrency=1, queue=5, queue_timeout=5)
        holder = await limiter.acquire("k", config)
        on_the_wire = asyncio.Event()
        fail = asyncio.Event()
        scripts = limiter._scripts  # the one seam where a poll can be made to fail on cue
        run_script = scripts.run

        async def failing_poll(
            name: str, key: str, config: LimitConfig, extra: list[str | int | float]
        ) -> dict[str, Any]:
            if name != "poll":
                return await run_script(name, key, config, extra)
            on_the_wire.set()
            await fail.wait()
            raise BackendUnavailable("the poll failed")

        monkeypatch.setattr(scripts, "run", failing_poll)
        first = asyncio.create_task(limiter.acquire("k", config))
        await asyncio.wait_for(on_the_wire.wait(), 5)
        second = asyncio.create_task(limiter.acquire("k", config))
        await until(lambda: limiter.queued("k") == 2, "the second waiter queued")
        fail.set()
        for waiter in (first, second):
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(waiter, 2)
        holder.release()
        await close(limiter)

    run(scenario)


def test_no_slot_or_ticket_leaks_when_requests_go_away_at_any_moment(redis_url: str) -> None:
    """Hundreds of acquires on two replicas, cancelled at random moments (during the Redis
    call, while queued, after admission) or released: Redis ends with nothing held."""
    import random

    async def scenario() -> None:
        a, b = replicas(redis_url, lease=5.0)
        await start(a, b)
        config = LimitConfig(concurrency=3, queue=500, queue_timeout=5)
        rng = random.Random(8)
        peak = 0

        async def client(limiter: RedisLimiter) -> None:
            nonlocal peak
            slot = await limiter.acquire("s", config)
            try:  # as FloodControl does: whatever ends the exchange releases the slot
                peak = max(peak, a.in_flight("s") + b.in_flight("s"))
                await asyncio.sleep(rng.random() * 0.01)
            finally:
                slot.release()

        tasks = []
        for i in range(300):
            task = asyncio.create_task(client(a if i % 2 else b))
            tasks.append(task)
            if rng.random() < 0.4:
                asyncio.get_running_loop().call_later(rng.random() * 0.05, task.cancel)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(1 for r in results if r is None) > 50
        odd = [r for r in results if not (r is None or isinstance(r, asyncio.CancelledError))]
        assert not odd, odd[:5]
        assert peak <= 3
        deadline = time.monotonic() + 5
        while True:
            view = await shared_view(a, "s")
            if (view["in_flight"], view["queued"]) == (0, 0):
                break
            assert time.monotonic() < deadline, view
            await asyncio.sleep(0.02)
        await close(a, b)

    run(scenario)
