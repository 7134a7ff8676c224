"""Sweeper: coarse deadlines, set and cleared with a dict write, fired once."""

from __future__ import annotations

import asyncio

from hookwall.flow.sweep import Sweeper


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadlines_fire_once_when_due_unless_cleared_or_replaced() -> None:
    async def scenario() -> list[str]:
        clock, fired = Clock(), []
        sweeper = Sweeper(tick=3600, clock=clock)  # swept by hand below
        sweeper.set("a", 1.0, lambda: fired.append("a"))
        sweeper.set("b", 1.0, lambda: fired.append("b"))
        sweeper.set("c", 5.0, lambda: fired.append("c"))
        sweeper.clear("b")
        sweeper.set("a", 2.0, lambda: fired.append("a2"))  # replaced: the later deadline holds
        clock.now += 1.5
        sweeper.sweep()
        clock.now += 1.0
        sweeper.sweep()
        sweeper.sweep()
        assert len(sweeper) == 1  # only c is left
        sweeper.stop()
        return fired

    assert asyncio.run(scenario()) == ["a2"]


def _fails() -> None:
    raise ZeroDivisionError("a broken callback")


def test_a_failing_callback_never_stops_the_others() -> None:
    async def scenario() -> list[str]:
        clock, fired = Clock(), []
        sweeper = Sweeper(tick=3600, clock=clock)
        sweeper.set("bad", 1.0, _fails)
        sweeper.set("good", 1.0, lambda: fired.append("good"))
        clock.now += 2
        sweeper.sweep()
        sweeper.stop()
        return fired

    assert asyncio.run(scenario()) == ["good"]


def test_the_sweep_runs_by_itself_on_the_loop() -> None:
    async def scenario() -> bool:
        done = asyncio.Event()
        sweeper = Sweeper(tick=0.01)
        sweeper.set("x", 0.0, done.set)
        await asyncio.wait_for(done.wait(), 5)
        sweeper.stop()
        return done.is_set()

    assert asyncio.run(scenario())
