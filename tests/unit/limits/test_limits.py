"""DestinationLimiter: cap, FIFO queue, token bucket, pauses, circuit breaker, cancellation.

Time is a FakeClock wherever rate, pauses or cool-offs are involved (advance it, then
``limiter.wake()``); only the queue-timeout tests use small real timeouts, because the timeout is
what they test. Everything else synchronises on the limiter's own state, never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from hookwall.limits import DestinationLimiter, LimitConfig, Rejected, Slot


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, object]]] = []

    def __call__(self, key: str, event: str, fields: dict[str, object]) -> None:
        self.seen.append((key, event, fields))

    def names(self) -> list[str]:
        return [event for _, event, _ in self.seen]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def until(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Yield to the loop until ``predicate`` holds (no wall-clock waiting)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def acquire_now(limiter: DestinationLimiter, key: str, config: LimitConfig) -> Slot:
    """Acquire and insist that it completes without suspending (no queueing, no loop turn)."""
    coro = limiter.acquire(key, config)
    try:
        coro.send(None)
    except StopIteration as done:
        slot: Slot = done.value
        return slot
    coro.close()
    raise AssertionError(f"acquire({key!r}) had to wait")


def rejected_now(limiter: DestinationLimiter, key: str, config: LimitConfig) -> Rejected:
    """Acquire and insist on an immediate rejection."""
    coro = limiter.acquire(key, config)
    try:
        coro.send(None)
    except Rejected as rejected:
        return rejected
    except StopIteration:
        raise AssertionError(f"acquire({key!r}) was admitted") from None
    coro.close()
    raise AssertionError(f"acquire({key!r}) had to wait")


async def enqueue(limiter: DestinationLimiter, key: str, config: LimitConfig) -> asyncio.Task[Slot]:
    """Start an acquire and return once it is waiting in the key's queue."""
    before = limiter.queued(key)
    task = asyncio.create_task(limiter.acquire(key, config))
    await until(lambda: limiter.queued(key) > before or task.done(), "enqueued")
    assert not task.done(), "expected to be queued"
    return task


async def rejection(task: asyncio.Task[Slot]) -> Rejected:
    with pytest.raises(Rejected) as info:
        await task
    return info.value


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"concurrency": 0},
        {"queue": -1},
        {"queue_timeout": -1.0},
        {"queue_timeout": float("inf")},
        {"rate": 0.0},
        {"rate": float("nan")},
        {"burst": 0},
        {"retry_after_max": -1.0},
        {"circuit_failures": -1},
        {"circuit_cooloff": -0.5},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LimitConfig(**bad)


def test_config_bucket_size() -> None:
    assert LimitConfig().bucket_size is None
    assert LimitConfig(rate=2.5).bucket_size == 3
    assert LimitConfig(rate=0.2).bucket_size == 1
    assert LimitConfig(rate=2.0, burst=7).bucket_size == 7


# -- concurrency and queue ------------------------------------------------------------------------


def test_cap_never_exceeded() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=5, queue=100)
        holders = 0
        peak = 0

        async def one() -> None:
            nonlocal holders, peak
            async with await limiter.acquire("k", config):
                holders += 1
                peak = max(peak, holders)
                assert holders <= limiter.in_flight("k") <= 5
                for _ in range(3):
                    await asyncio.sleep(0)
                holders -= 1

        await asyncio.gather(*(one() for _ in range(60)))
        assert peak == 5
        assert (limiter.in_flight("k"), limiter.queued("k")) == (0, 0)

    run(main)


def test_fifo_order() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=1)
        holder = acquire_now(limiter, "k", config)
        admitted: list[int] = []

        async def waiter(number: int) -> None:
            async with await limiter.acquire("k", config):
                admitted.append(number)

        tasks = []
        for number in range(10):
            tasks.append(asyncio.create_task(waiter(number)))
            await until(lambda: limiter.queued("k") == len(tasks))
        holder.release()
        await asyncio.gather(*tasks)
        assert admitted == list(range(10))

    run(main)


def test_no_barging_when_a_slot_frees() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=1)
        holder = acquire_now(limiter, "k", config)
        first = await enqueue(limiter, "k", config)
        holder.release()  # hands the slot to the queued request, synchronously
        assert limiter.in_flight("k") == 1
        late = await enqueue(limiter, "k", config)  # the newcomer must queue behind
        (await first).release()
        (await late).release()
        assert limiter.in_flight("k") == 0

    run(main)


def test_no_barging_when_a_token_appears() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(rate=1.0, burst=1, queue_timeout=5.0)
        acquire_now(limiter, "k", config).release()
        first = await enqueue(limiter, "k", config)
        clock.advance(1.0)  # the token exists, but no timer has fired yet
        late = asyncio.create_task(limiter.acquire("k", config))
        await until(lambda: first.done(), "head admitted")
        assert not late.done()
        assert limiter.queued("k") == 1
        (await first).release()
        clock.advance(1.0)
        limiter.wake()
        (await late).release()

    run(main)


def test_queue_full() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=1, queue=2, queue_timeout=9.5)
        holder = acquire_now(limiter, "k", config)
        waiting = [await enqueue(limiter, "k", config) for _ in range(2)]
        rejected = rejected_now(limiter, "k", config)
        assert rejected.reason == "queue-full"
        assert rejected.retry_after == 10
        assert rejected.message and str(rejected) == rejected.message
        holder.release()
        for task in waiting:
            (await task).release()

    run(main)


def test_queue_zero_rejects_excess_at_once() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=2, queue=0)
        slots = [acquire_now(limiter, "k", config) for _ in range(2)]
        assert rejected_now(limiter, "k", config).reason == "queue-full"
        slots[0].release()
        acquire_now(limiter, "k", config).release()

    run(main)


def test_queue_timeout() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        holder = acquire_now(limiter, "k", LimitConfig(concurrency=1))
        patient = await enqueue(limiter, "k", LimitConfig(concurrency=1, queue_timeout=5.0))
        hasty = await enqueue(limiter, "k", LimitConfig(concurrency=1, queue_timeout=0.05))
        rejected = await rejection(hasty)
        assert rejected.reason == "queue-timeout"
        assert rejected.retry_after >= 1
        assert (limiter.in_flight("k"), limiter.queued("k")) == (1, 1)
        holder.release()  # the request ahead of it was unaffected
        (await patient).release()
        assert (limiter.in_flight("k"), limiter.queued("k")) == (0, 0)

    run(main)


def test_queue_timeout_follows_the_injected_clock() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(concurrency=1, queue_timeout=3.0)
        holder = acquire_now(limiter, "k", config)
        waiting = await enqueue(limiter, "k", config)
        clock.advance(2.9)
        limiter.wake()
        assert not waiting.done()
        clock.advance(0.1)
        limiter.wake()
        assert (await rejection(waiting)).reason == "queue-timeout"
        holder.release()

    run(main)


def test_queued_ms() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(concurrency=1)
        holder = acquire_now(limiter, "k", config)
        assert holder.queued_ms == 0.0
        waiting = await enqueue(limiter, "k", config)
        clock.advance(0.25)
        holder.release()
        slot = await waiting
        assert slot.queued_ms == pytest.approx(250.0)
        slot.release()

    run(main)


# -- rate ------------------------------------------------------------------------------------------


def test_rate_tokens_and_burst() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(rate=2.0, burst=3, concurrency=100)
        for _ in range(3):
            acquire_now(limiter, "k", config).release()
        assert limiter.snapshot()[0]["tokens"] == 0.0
        waiting = await enqueue(limiter, "k", config)
        clock.advance(0.4)
        limiter.wake()
        assert not waiting.done()
        clock.advance(0.1)
        limiter.wake()
        slot = await waiting
        assert slot.queued_ms == pytest.approx(500.0)
        slot.release()
        clock.advance(100.0)  # refills only up to the burst
        assert limiter.snapshot()[0]["tokens"] == 3.0

    run(main)


def test_default_burst_is_ceil_rate() -> None:
    async def main() -> None:
        limiter = DestinationLimiter(clock=FakeClock())
        config = LimitConfig(rate=2.5)
        for _ in range(3):
            acquire_now(limiter, "k", config)
        (await enqueue(limiter, "k", config)).cancel()

    run(main)


def test_rate_limited_when_unservable_within_timeout() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(rate=1.0, burst=1, queue_timeout=2.0)
        acquire_now(limiter, "k", config).release()
        second = await enqueue(limiter, "k", config)  # its token comes in 1 s
        third = await enqueue(limiter, "k", config)  # in 2 s: still within the timeout
        rejected = rejected_now(limiter, "k", config)  # in 3 s: never in time
        assert rejected.reason == "rate-limited"
        assert rejected.retry_after == 3
        clock.advance(1.0)
        limiter.wake()
        (await second).release()
        clock.advance(1.0)
        limiter.wake()
        (await third).release()

    run(main)


def test_rate_limited_without_queue() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(rate=4.0, burst=1, queue=0)
        acquire_now(limiter, "k", config).release()
        rejected = rejected_now(limiter, "k", config)
        assert (rejected.reason, rejected.retry_after) == ("rate-limited", 1)
        clock.advance(0.25)
        acquire_now(limiter, "k", config).release()

    run(main)


def test_rate_reload_keeps_spent_tokens() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        acquire_now(limiter, "k", LimitConfig(rate=1.0, burst=1)).release()
        faster = LimitConfig(rate=10.0, burst=5)
        waiting = await enqueue(limiter, "k", faster)  # no fresh burst on reload
        clock.advance(0.1)
        limiter.wake()
        (await waiting).release()
        acquire_now(limiter, "k", LimitConfig()).release()  # rate removed: unlimited
        acquire_now(limiter, "k", LimitConfig()).release()

    run(main)


# -- backpressure pauses -----------------------------------------------------------------------


def test_pause_holds_every_caller() -> None:
    async def main() -> None:
        clock = FakeClock()
        events = Events()
        limiter = DestinationLimiter(clock=clock, on_event=events)
        config = LimitConfig(concurrency=5, queue_timeout=10.0)
        slot = acquire_now(limiter, "k", config)
        limiter.report("k", "neutral", status=429, retry_after=5.0)
        slot.release()
        assert events.seen == [
            ("k", "destination_paused", {"pause_s": 5.0, "status": 429, "retry_after_s": 5.0})
        ]
        assert limiter.snapshot()[0]["paused_for_s"] == 5.0
        first = await enqueue(limiter, "k", config)  # cap is free, but the key is paused
        second = await enqueue(limiter, "k", config)
        clock.advance(4.9)
        limiter.wake()
        assert not first.done()
        clock.advance(0.1)
        limiter.wake()
        (await first).release()
        (await second).release()
        assert limiter.snapshot()[0]["paused_for_s"] == 0.0

    run(main)


def test_pause_longer_than_queue_timeout() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(queue_timeout=10.0)
        limiter.report("k", "neutral", status=429, retry_after=3.0)
        early = await enqueue(limiter, "k", config)  # deadline t+10
        clock.advance(1.0)
        late = await enqueue(limiter, "k", config)  # deadline t+11
        limiter.report("k", "failure", status=503, retry_after=9.5)  # pause ends at t+10.5
        rejected = await rejection(early)  # cannot outlast the pause: refused now
        assert (rejected.reason, rejected.retry_after) == ("queue-timeout", 10)
        assert limiter.queued("k") == 1  # `late` can, so it keeps waiting
        hasty = LimitConfig(queue_timeout=5.0)
        fresh = rejected_now(limiter, "k", hasty)  # new requests are refused at once too
        assert (fresh.reason, fresh.retry_after) == ("queue-timeout", 10)
        clock.advance(4.0)
        assert rejected_now(limiter, "k", hasty).retry_after == 6  # the remaining pause
        clock.advance(5.5)
        limiter.wake()
        (await late).release()

    run(main)


def test_pause_within_timeout_keeps_waiters() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(concurrency=1, queue_timeout=10.0)
        holder = acquire_now(limiter, "k", config)
        waiting = await enqueue(limiter, "k", config)
        limiter.report("k", "neutral", status=429, retry_after=4.0)
        holder.release()  # slot free, but paused
        assert not waiting.done()
        clock.advance(4.0)
        limiter.wake()
        (await waiting).release()

    run(main)


def test_pause_is_clamped() -> None:
    async def main() -> None:
        clock = FakeClock()
        events = Events()
        limiter = DestinationLimiter(clock=clock, on_event=events)
        config = LimitConfig(retry_after_max=60.0)
        acquire_now(limiter, "k", config).release()
        limiter.report("k", "neutral", status=429, retry_after=1e9)
        assert limiter.snapshot()[0]["paused_for_s"] == 60.0
        assert events.seen[0][2]["pause_s"] == 60.0
        assert rejected_now(limiter, "k", config).retry_after == 60
        limiter.report("k", "neutral", status=429, retry_after=5.0)  # a shorter pause: no change
        assert limiter.snapshot()[0]["paused_for_s"] == 60.0
        assert len(events.seen) == 1

    run(main)


@pytest.mark.parametrize(
    ("status", "retry_after"), [(500, 30.0), (200, 30.0), (429, None), (503, None), (429, 0.0)]
)
def test_no_pause_without_429_or_503_and_retry_after(
    status: int, retry_after: float | None
) -> None:
    async def main() -> None:
        limiter = DestinationLimiter(clock=FakeClock())
        config = LimitConfig()
        acquire_now(limiter, "k", config).release()
        limiter.report("k", "neutral", status=status, retry_after=retry_after)
        assert limiter.snapshot()[0]["paused_for_s"] == 0.0
        acquire_now(limiter, "k", config).release()

    run(main)


# -- circuit breaker ---------------------------------------------------------------------------


def fail(limiter: DestinationLimiter, key: str, config: LimitConfig, times: int) -> None:
    for _ in range(times):
        slot = acquire_now(limiter, key, config)
        limiter.report(key, "failure")
        slot.release()


def test_circuit_lifecycle() -> None:
    async def main() -> None:
        clock = FakeClock()
        events = Events()
        limiter = DestinationLimiter(clock=clock, on_event=events)
        config = LimitConfig(circuit_failures=3, circuit_cooloff=30.0)
        fail(limiter, "k", config, 2)
        assert limiter.snapshot()[0]["circuit"] == "closed"
        fail(limiter, "k", config, 1)
        assert events.seen == [
            ("k", "circuit_opened", {"from": "closed", "failures": 3, "cooloff_s": 30.0})
        ]
        assert limiter.snapshot()[0]["circuit"] == "open"
        rejected = rejected_now(limiter, "k", config)
        assert (rejected.reason, rejected.retry_after) == ("circuit-open", 30)
        clock.advance(10.5)
        assert rejected_now(limiter, "k", config).retry_after == 20

        clock.advance(19.5)  # cool-off over: one probe
        assert limiter.snapshot()[0]["circuit"] == "half-open"
        probe = acquire_now(limiter, "k", config)
        assert events.names()[-1] == "circuit_half_open"
        other = rejected_now(limiter, "k", config)
        assert (other.reason, other.retry_after) == ("circuit-open", 1)
        limiter.report("k", "failure")  # the probe failed: open for another cool-off
        probe.release()
        assert events.names()[-1] == "circuit_opened"
        assert events.seen[-1][2]["from"] == "half-open"
        assert rejected_now(limiter, "k", config).retry_after == 30

        clock.advance(30.0)
        probe = acquire_now(limiter, "k", config)
        limiter.report("k", "success")
        probe.release()
        assert events.names() == [
            "circuit_opened",
            "circuit_half_open",
            "circuit_opened",
            "circuit_half_open",
            "circuit_closed",
        ]
        slots = [acquire_now(limiter, "k", config) for _ in range(3)]  # closed: all pass
        for slot in slots:
            slot.release()
        assert limiter.snapshot()[0]["failures"] == 0

    run(main)


def test_opening_circuit_rejects_queued_waiters() -> None:
    async def main() -> None:
        limiter = DestinationLimiter(clock=FakeClock())
        config = LimitConfig(concurrency=1, circuit_failures=1, circuit_cooloff=7.0)
        holder = acquire_now(limiter, "k", config)
        waiting = [await enqueue(limiter, "k", config) for _ in range(3)]
        limiter.report("k", "failure")
        for task in waiting:
            rejected = await rejection(task)
            assert (rejected.reason, rejected.retry_after) == ("circuit-open", 7)
        assert limiter.queued("k") == 0
        holder.release()
        assert limiter.in_flight("k") == 0

    run(main)


def test_reports_while_open_are_ignored() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(circuit_failures=1, circuit_cooloff=10.0)
        straggler = acquire_now(limiter, "k", config)
        fail(limiter, "k", config, 1)
        limiter.report("k", "success")  # a late reply to a request sent before it opened
        straggler.release()
        assert rejected_now(limiter, "k", config).reason == "circuit-open"

    run(main)


def test_half_open_probe_without_verdict_lets_the_next_probe() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(circuit_failures=1, circuit_cooloff=5.0)
        fail(limiter, "k", config, 1)
        clock.advance(5.0)
        probe = acquire_now(limiter, "k", config)
        limiter.report("k", "neutral")  # e.g. a 4xx: says nothing about the receiver's health
        assert rejected_now(limiter, "k", config).reason == "circuit-open"
        probe.release()
        probe = acquire_now(limiter, "k", config)  # the next request probes
        assert rejected_now(limiter, "k", config).reason == "circuit-open"
        probe.release()  # released without any report
        probe = acquire_now(limiter, "k", config)
        limiter.report("k", "success")
        probe.release()
        assert limiter.snapshot()[0]["circuit"] == "closed"

    run(main)


def test_half_open_probe_cancelled_while_queued() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(concurrency=1, circuit_failures=1, circuit_cooloff=5.0)
        straggler = acquire_now(limiter, "k", config)  # still in flight when the circuit opens
        fail_config = LimitConfig(concurrency=2, circuit_failures=1, circuit_cooloff=5.0)
        fail(limiter, "k", fail_config, 1)
        clock.advance(5.0)
        probe = await enqueue(limiter, "k", config)  # the probe waits for the cap
        assert rejected_now(limiter, "k", config).reason == "circuit-open"
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        second = await enqueue(limiter, "k", config)  # becomes the probe instead
        straggler.release()
        slot = await second
        limiter.report("k", "success")
        slot.release()
        assert limiter.snapshot()[0]["circuit"] == "closed"

    run(main)


def test_success_resets_consecutive_failures() -> None:
    async def main() -> None:
        limiter = DestinationLimiter(clock=FakeClock())
        config = LimitConfig(circuit_failures=3)
        fail(limiter, "k", config, 2)
        slot = acquire_now(limiter, "k", config)
        limiter.report("k", "success")
        slot.release()
        fail(limiter, "k", config, 2)
        slot = acquire_now(limiter, "k", config)
        limiter.report("k", "neutral")  # neutral neither counts nor resets
        slot.release()
        assert limiter.snapshot()[0]["failures"] == 2
        assert limiter.snapshot()[0]["circuit"] == "closed"
        fail(limiter, "k", config, 1)
        assert limiter.snapshot()[0]["circuit"] == "open"

    run(main)


def test_circuit_disabled() -> None:
    async def main() -> None:
        events = Events()
        limiter = DestinationLimiter(clock=FakeClock(), on_event=events)
        off = LimitConfig(circuit_failures=0)
        fail(limiter, "k", off, 50)
        assert events.seen == []
        fail(limiter, "j", LimitConfig(circuit_failures=1), 1)
        acquire_now(limiter, "j", off).release()  # a reload that disables it closes it
        assert events.names() == ["circuit_opened", "circuit_closed"]

    run(main)


def test_failing_event_sink_does_not_break_admission() -> None:
    def broken(key: str, event: str, fields: dict[str, object]) -> None:
        raise RuntimeError("log sink down")

    async def main() -> None:
        limiter = DestinationLimiter(clock=FakeClock(), on_event=broken)
        fail(limiter, "k", LimitConfig(circuit_failures=1), 1)
        assert rejected_now(limiter, "k", LimitConfig()).reason == "circuit-open"

    run(main)


# -- isolation, cancellation, slots --------------------------------------------------------------


def test_keys_are_independent() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(concurrency=1, queue=2, circuit_failures=1)
        holder = acquire_now(limiter, "a", config)
        waiting = [await enqueue(limiter, "a", config) for _ in range(2)]
        limiter.report("a", "neutral", status=429, retry_after=5.0)
        assert rejected_now(limiter, "a", config).reason == "queue-full"
        acquire_now(limiter, "b", config).release()  # admitted without even a loop turn
        limiter.report("a", "failure")  # open a's circuit too
        acquire_now(limiter, "b", config).release()
        for task in waiting:
            assert (await rejection(task)).reason == "circuit-open"
        holder.release()
        assert limiter.snapshot() == [
            {
                "key": "a",
                "in_flight": 0,
                "queued": 0,
                "paused_for_s": 5.0,
                "circuit": "open",
                "failures": 1,
            },
            {
                "key": "b",
                "in_flight": 0,
                "queued": 0,
                "paused_for_s": 0.0,
                "circuit": "closed",
                "failures": 0,
            },
        ]

    run(main)


def test_cancel_while_queued() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=1)
        holder = acquire_now(limiter, "k", config)
        doomed = await enqueue(limiter, "k", config)
        behind = await enqueue(limiter, "k", config)
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert limiter.queued("k") == 1
        holder.release()  # goes to the request behind, not to the cancelled one
        slot = await behind
        assert limiter.in_flight("k") == 1
        slot.release()
        assert (limiter.in_flight("k"), limiter.queued("k")) == (0, 0)

    run(main)


def test_cancel_at_the_moment_of_admission_gives_the_slot_back() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=1)
        holder = acquire_now(limiter, "k", config)
        doomed = await enqueue(limiter, "k", config)
        behind = await enqueue(limiter, "k", config)
        holder.release()  # admits `doomed` ...
        doomed.cancel()  # ... which is cancelled before it can run
        with pytest.raises(asyncio.CancelledError):
            await doomed
        slot = await behind  # the slot went back to the pool and on to the next
        assert limiter.in_flight("k") == 1
        slot.release()
        assert limiter.in_flight("k") == 0

    run(main)


def test_timeout_around_acquire() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=1)
        holder = acquire_now(limiter, "k", config)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await limiter.acquire("k", config)
        assert limiter.queued("k") == 0
        holder.release()
        assert limiter.in_flight("k") == 0

    run(main)


def test_release_is_idempotent_and_async_with_releases() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        config = LimitConfig(concurrency=2)
        first = acquire_now(limiter, "k", config)
        second = acquire_now(limiter, "k", config)
        first.release()
        first.release()
        assert first.released
        assert limiter.in_flight("k") == 1
        with pytest.raises(ZeroDivisionError):
            async with second:
                _ = 1 / 0
        assert limiter.in_flight("k") == 0
        second.release()
        assert limiter.in_flight("k") == 0

    run(main)


def test_config_reload_applies_to_queued_requests() -> None:
    async def main() -> None:
        limiter = DestinationLimiter()
        holder = acquire_now(limiter, "k", LimitConfig(concurrency=1))
        waiting = [await enqueue(limiter, "k", LimitConfig(concurrency=1)) for _ in range(2)]
        wider = LimitConfig(concurrency=4)
        slot = acquire_now(limiter, "k", wider)  # the reload admits the queued ones first
        assert (limiter.in_flight("k"), limiter.queued("k")) == (4, 0)
        for task in waiting:
            (await task).release()
        slot.release()
        holder.release()
        assert limiter.in_flight("k") == 0

    run(main)


# -- memory and snapshot ----------------------------------------------------------------------


def test_idle_keys_are_evicted() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock, max_idle_keys=3)
        config = LimitConfig()
        busy = acquire_now(limiter, "busy", config)
        limiter.report("paused", "neutral", status=429, retry_after=60.0)
        fail(limiter, "broken", LimitConfig(circuit_failures=1), 1)
        acquire_now(limiter, "drained", LimitConfig(rate=0.1)).release()
        for number in range(20):
            acquire_now(limiter, f"idle-{number:02}", config).release()
        keys = {row["key"] for row in limiter.snapshot()}
        # Busy, paused, open-circuit and drained-bucket keys stay: forgetting them would
        # lift a limit. The newest idle key stays too; older idle ones go.
        assert keys == {"busy", "paused", "broken", "drained", "idle-19"}
        busy.release()
        clock.advance(61.0)  # pause over, bucket refilled; the circuit is still open
        acquire_now(limiter, "new", config).release()
        keys = {row["key"] for row in limiter.snapshot()}
        assert len(keys) == 3
        assert {"broken", "new"} <= keys

    run(main)


def test_snapshot_contents_and_bound() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = DestinationLimiter(clock=clock)
        config = LimitConfig(concurrency=1, rate=2.0, burst=4)
        holder = acquire_now(limiter, "z.example", config)
        waiting = await enqueue(limiter, "z.example", config)
        acquire_now(limiter, "a.example", LimitConfig()).release()
        rows = limiter.snapshot()
        assert [row["key"] for row in rows] == ["a.example", "z.example"]
        assert "tokens" not in rows[0]
        assert rows[1] == {
            "key": "z.example",
            "in_flight": 1,
            "queued": 1,
            "paused_for_s": 0.0,
            "circuit": "closed",
            "failures": 0,
            "tokens": 3.0,
        }
        assert [row["key"] for row in limiter.snapshot(limit=1)] == ["a.example"]
        holder.release()
        (await waiting).release()

    run(main)


def test_unknown_keys() -> None:
    limiter = DestinationLimiter()
    assert limiter.in_flight("nope") == 0
    assert limiter.queued("nope") == 0
    assert limiter.snapshot() == []
    limiter.wake("nope")
