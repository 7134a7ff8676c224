"""Holds: what an exchange took is given back exactly once, last taken first."""

from __future__ import annotations

import logging
from functools import partial

import pytest

from hookwall.flow.holds import Holds


def test_everything_is_given_back_once_last_taken_first() -> None:
    holds, given = Holds(), list[str]()
    for name in ("in-flight", "slot", "timer"):
        holds.add(name, partial(given.append, name))
    assert holds.held() == ["in-flight", "slot", "timer"]
    holds.release_all()
    holds.release_all()
    assert given == ["timer", "slot", "in-flight"]
    assert holds.held() == []


def test_a_hold_given_back_early_is_not_given_back_again() -> None:
    holds, given = Holds(), []
    slot = holds.add("slot", lambda: given.append("slot"))
    slot.release()
    holds.release_all()
    assert given == ["slot"]


def test_a_forgotten_hold_is_never_released() -> None:
    holds, given = Holds(), []
    waiting = holds.add("queue wait", lambda: given.append("cancelled"))
    waiting.forget()
    holds.release_all()
    assert given == []


def test_taking_after_the_end_gives_back_at_once() -> None:
    """An await that finishes after its exchange ended (a slot granted to a departed sender)."""
    holds, given = Holds(), []
    holds.release_all()
    hold = holds.add("slot", lambda: given.append("slot"))
    assert given == ["slot"] and not hold.held


def _fails() -> None:
    raise ZeroDivisionError("a broken release")


def test_one_failing_release_does_not_keep_the_others(caplog: pytest.LogCaptureFixture) -> None:
    holds, given = Holds(), []
    holds.add("in-flight", lambda: given.append("in-flight"))
    holds.add("broken", _fails)
    with caplog.at_level(logging.ERROR):
        holds.release_all()
    assert given == ["in-flight"]
    assert "releasing broken failed" in caplog.text


def test_work_for_an_exchange_stops_when_it_ends_and_only_while_inside() -> None:
    import asyncio

    from hookwall.flow.holds import stopped_if_released

    async def scenario() -> tuple[bool, bool]:
        holds, after = Holds(), Holds()
        started = asyncio.Event()

        async def retries() -> None:
            with stopped_if_released(holds, "retries"):
                started.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(retries())
        await started.wait()
        holds.release_all()  # the sender left
        await asyncio.gather(task, return_exceptions=True)

        async def finished_work() -> None:
            with stopped_if_released(after, "hops"):
                await asyncio.sleep(0)
            after.release_all()  # the exchange ends later, in the same task: not cancelled
            await asyncio.sleep(0)

        await finished_work()
        return task.cancelled(), after.held() == []

    assert asyncio.run(scenario()) == (True, True)
