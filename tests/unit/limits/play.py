"""The steps a limiter contract scenario is written in, and the player that runs them against
one driver (``limiters``).

Requests are named. ``Acquire`` starts one, checks whether it was admitted, refused or queued
on arrival (``Driver.arrived``); then, as after every other action, the limiter settles
(``Driver.settle``) before the next step, so a check sees everything the limiter will do about
the steps so far. ``Together`` runs actions with no settling between them (a release and a
cancellation in the same loop turn; a newcomer that arrives before the limiter looked at the
clock again) and judges its arrivals once all has settled. A value that legitimately differs
between implementations is written ``By(local=..., workers=..., redis=...)``, so the table
says so where it happens.

After the last step the player releases every slot still held until nobody waits any more,
and checks that each key it used ends with nothing in flight and nothing queued: whichever
way an admission ended, its slot came back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal, cast

import pytest

from hookwall.core.denials import Reason
from hookwall.limits import LimitConfig, Outcome, Rejected
from hookwall.limits.backend import SlotHandle
from tests.unit.limits.limiters import Driver, Kind

__all__ = [
    "ADMITTED",
    "CANCELLED",
    "QUEUED",
    "Acquire",
    "Advance",
    "By",
    "Cancel",
    "Check",
    "Events",
    "Expect",
    "Refused",
    "Release",
    "Report",
    "Scenario",
    "Together",
    "failures",
    "play",
]

ADMITTED: Literal["admitted"] = "admitted"
QUEUED: Literal["queued"] = "queued"
CANCELLED: Literal["cancelled"] = "cancelled"


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Reason
    retry_after: int | None = None  # None: any


Status = Literal["admitted", "queued", "cancelled"] | Refused


@dataclass(frozen=True, slots=True)
class By[T]:
    """A value per implementation (``redis`` covers the fleet too)."""

    local: T
    workers: T
    redis: T

    def of(self, kind: Kind) -> T:
        return cast(T, getattr(self, kind))


type Per[T] = T | By[T]


# -- steps ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acquire:
    name: str
    config: LimitConfig
    expect: Per[Status | None] = ADMITTED  # None: not checked on arrival
    key: str = "k"


@dataclass(frozen=True, slots=True)
class Expect:
    name: str
    status: Per[Status]
    queued_ms: Per[float | None] = None


@dataclass(frozen=True, slots=True)
class Release:
    name: str
    times: int = 1


@dataclass(frozen=True, slots=True)
class Cancel:
    name: str


@dataclass(frozen=True, slots=True)
class Report:
    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None
    via: str | None = None  # the request whose limiter hears it (default: the first)
    key: str = "k"


@dataclass(frozen=True, slots=True)
class Advance:
    seconds: float


@dataclass(frozen=True, slots=True)
class Check:
    key: str = "k"
    in_flight: Per[int | None] = None
    queued: Per[int | None] = None
    circuit: str | None = None
    failures: int | None = None


@dataclass(frozen=True, slots=True)
class Events:
    """The events logged since the previous ``Events`` step, in order: a name, or (name,
    the fields that must match)."""

    expected: tuple[str | tuple[str, dict[str, object]], ...]

    def __init__(self, *expected: str | tuple[str, dict[str, object]]) -> None:
        object.__setattr__(self, "expected", expected)


Action = Acquire | Release | Cancel | Report | Advance


@dataclass(frozen=True, slots=True)
class Together:
    actions: tuple[Action, ...]

    def __init__(self, *actions: Action) -> None:
        object.__setattr__(self, "actions", actions)


Step = Action | Expect | Check | Events | Together


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    promise: str
    steps: list[Step]
    differs: str = ""  # why some values are By(...): the legitimate differences

    def __str__(self) -> str:
        return self.id


def failures(prefix: str, config: LimitConfig, times: int, key: str = "k") -> list[Step]:
    """``times`` exchanges that fail, one after the other."""
    steps: list[Step] = []
    for number in range(times):
        name = f"{prefix}{number}"
        steps += [
            Acquire(name, config, key=key),
            Report("failure", via=name, key=key),
            Release(name),
        ]
    return steps


# -- the player -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    task: asyncio.Task[SlotHandle]
    index: int  # of the limiter it went to
    key: str
    released: bool = False


@dataclass(slots=True)
class _Player:
    driver: Driver
    requests: dict[str, _Request] = field(default_factory=dict)
    arrivals: list[tuple[str, Per[Status | None]]] = field(default_factory=list)
    seen_events: int = 0
    keys: set[str] = field(default_factory=set)

    @property
    def kind(self) -> Kind:
        return self.driver.kind

    def value[T](self, value: Per[T]) -> T:
        return value.of(self.kind) if isinstance(value, By) else value

    async def step(self, step: Step) -> None:
        match step:
            case Together(actions=actions):
                for action in actions:
                    await self.act(action, settle=False)
                await self.driver.settle()
                self.check_arrivals()
            case Acquire() | Release() | Cancel() | Report() | Advance():
                await self.act(step, settle=True)
                self.check_arrivals()
            case Expect(name=name, status=status, queued_ms=queued_ms):
                self.expect(name, self.value(status), self.value(queued_ms))
            case Check():
                await self.check(step)
            case Events(expected=expected):
                self.events(expected)

    async def act(self, action: Action, *, settle: bool) -> None:
        match action:
            case Acquire():
                await self.arrive(action, wait=settle)
            case Release(name=name, times=times):
                slot = self.slot(name)
                for _ in range(times):
                    slot.release()
                self.requests[name].released = True
            case Cancel(name=name):
                self.requests[name].task.cancel()
            case Report(outcome=outcome, status=status, retry_after=retry_after, via=via):
                index = 0 if via is None else self.requests[via].index
                limiter = self.driver.limiters[index]
                limiter.report(action.key, outcome, retry_after=retry_after, status=status)
                self.keys.add(action.key)
            case Advance(seconds=seconds):
                await self.driver.advance(seconds, look=settle)
                return
        if settle:
            await self.driver.settle()

    async def arrive(self, acquire: Acquire, *, wait: bool) -> None:
        assert acquire.name not in self.requests, f"{acquire.name} twice"
        index = len(self.requests) % len(self.driver.limiters)
        limiter = self.driver.limiters[index]
        before = self.driver.holding(index, acquire.key)
        task = asyncio.create_task(limiter.acquire(acquire.key, acquire.config))
        self.requests[acquire.name] = _Request(task, index, acquire.key)
        self.keys.add(acquire.key)
        await self.driver.arrived(index, acquire.key, before, task)
        if not wait:  # in a Together: judged once everything has settled
            self.arrivals.append((acquire.name, acquire.expect))
            return
        status = self.value(acquire.expect)
        if status is not None:
            self.expect(acquire.name, status, None)

    def check_arrivals(self) -> None:
        for name, expect in self.arrivals:
            status = self.value(expect)
            if status is not None:
                self.expect(name, status, None)
        self.arrivals.clear()

    def status(self, name: str) -> Status:
        task = self.requests[name].task
        if not task.done():
            return QUEUED
        if task.cancelled():
            return CANCELLED
        error = task.exception()
        if isinstance(error, Rejected):
            return Refused(error.reason, error.retry_after)
        if error is not None:
            raise AssertionError(f"{name} failed") from error
        return ADMITTED

    def expect(self, name: str, status: Status, queued_ms: float | None) -> None:
        seen = self.status(name)
        if isinstance(status, Refused) and status.retry_after is None:
            assert isinstance(seen, Refused) and seen.reason == status.reason, (name, seen)
        else:
            assert seen == status, f"{name}: {seen}, expected {status}"
        if queued_ms is not None:
            assert self.slot(name).queued_ms == pytest.approx(queued_ms), name

    def slot(self, name: str) -> SlotHandle:
        task = self.requests[name].task
        assert task.done() and not task.cancelled() and task.exception() is None, name
        return task.result()

    async def check(self, check: Check) -> None:
        view = await self.driver.view(check.key)
        wanted = {
            "in_flight": self.value(check.in_flight),
            "queued": self.value(check.queued),
            "circuit": check.circuit,
            "failures": check.failures,
        }
        for name, value in wanted.items():
            if value is not None:
                assert getattr(view, name) == value, f"{check.key}: {view}"

    def events(self, expected: tuple[str | tuple[str, dict[str, object]], ...]) -> None:
        new = self.driver.events[self.seen_events :]
        self.seen_events = len(self.driver.events)
        names = [event for _, event, _ in new]
        assert names == [e if isinstance(e, str) else e[0] for e in expected], new
        for (_, _, fields), wanted in zip(new, expected, strict=True):
            if isinstance(wanted, tuple):
                assert {k: fields.get(k) for k in wanted[1]} == wanted[1], fields

    async def drain(self) -> None:
        """Release every slot still held until nobody waits; then nothing may be left."""
        for _ in range(len(self.requests) + 1):
            held = [
                name
                for name, request in self.requests.items()
                if not request.released and self.status(name) == ADMITTED
            ]
            if not held and all(request.task.done() for request in self.requests.values()):
                break
            for name in held:
                self.slot(name).release()
                self.requests[name].released = True
            await self.driver.settle()
        left = [name for name, request in self.requests.items() if not request.task.done()]
        assert not left, f"still waiting at the end: {left}"
        for key in sorted(self.keys):
            view = await self.driver.view(key)
            assert (view.in_flight, view.queued) == (0, 0), f"{key} at the end: {view}"


async def play(scenario: Scenario, driver: Driver) -> None:
    player = _Player(driver)
    for number, step in enumerate(scenario.steps):
        try:
            await player.step(step)
        except AssertionError as failure:
            raise AssertionError(f"step {number} {step}: {failure}") from failure
    await player.drain()
