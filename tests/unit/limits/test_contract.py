"""The limiter contract: one table of scenarios, run against every limiter hookwall has.

The local ``DestinationLimiter``, one worker's ``SharedByWorkers`` share (of ``WORKERS``), and
the ``RedisLimiter`` (one replica, and a fleet of two that the requests are spread over) must
keep the same promises: cap, FIFO queue, queue-full, queue timeout, rate limit, receivers'
pauses, circuit breaker, isolation of destinations, and every slot given back. Steps are in
``play``, the implementations' drivers in ``limiters``; time is each driver's fake clock.

Where an implementation legitimately differs, the row says ``By(local=, workers=, redis=)``
and ``differs`` says why. The usual reason is the workers' share: with ``WORKERS = 2`` each
worker enforces ``concurrency`` and ``burst`` halved (rounded down, at least 1) and ``rate``
halved; its queue, pauses and circuit are its own.
"""

from __future__ import annotations

import asyncio

import pytest

from hookwall.core.denials import Reason
from hookwall.limits import LimitConfig
from tests.support.redisserver import RedisServer, needs_redis
from tests.unit.limits.limiters import IMPLEMENTATIONS, driver
from tests.unit.limits.play import (
    ADMITTED,
    CANCELLED,
    QUEUED,
    Acquire,
    Advance,
    By,
    Cancel,
    Check,
    Events,
    Expect,
    Refused,
    Release,
    Report,
    Scenario,
    Together,
    failures,
    play,
)

# One object per situation, as one policy generation hands the same object to every request
# (the local limiter reconfigures a key when the object changes: a reload).
ONE = LimitConfig(concurrency=1, queue=10, queue_timeout=10.0)
TWO = LimitConfig(concurrency=2, queue=10, queue_timeout=10.0)
FOUR = LimitConfig(concurrency=4, queue=10, queue_timeout=10.0)
SMALL_QUEUE = LimitConfig(concurrency=1, queue=2, queue_timeout=9.5)
NO_QUEUE = LimitConfig(concurrency=2, queue=0)
SHORT_WAIT = LimitConfig(concurrency=1, queue_timeout=3.0)
RATED = LimitConfig(rate=1.0, burst=1, queue_timeout=5.0)
RATED_2S = LimitConfig(rate=1.0, burst=1, queue_timeout=2.0)
RATED_NO_QUEUE = LimitConfig(rate=2.0, burst=1, queue=0)
SLOW, FAST = LimitConfig(rate=1.0, burst=1), LimitConfig(rate=5.0, burst=5)
UNLIMITED = LimitConfig()
FIVE = LimitConfig(concurrency=5, queue_timeout=10.0)
PATIENT, HASTY = LimitConfig(queue_timeout=10.0), LimitConfig(queue_timeout=5.0)
CLAMPED = LimitConfig(retry_after_max=60.0)
BREAKER = LimitConfig(circuit_failures=3, circuit_cooloff=30.0)
TRIP_ONE = LimitConfig(concurrency=1, circuit_failures=1, circuit_cooloff=7.0)
TRIP = LimitConfig(circuit_failures=1, circuit_cooloff=10.0)
PROBE = LimitConfig(circuit_failures=1, circuit_cooloff=5.0)
PROBE_ONE = LimitConfig(concurrency=1, circuit_failures=1, circuit_cooloff=5.0)
OFF, ON = LimitConfig(circuit_failures=0), LimitConfig(circuit_failures=1)
ISOLATED = LimitConfig(concurrency=1, queue=2, circuit_failures=1)
NO_WAIT = LimitConfig(concurrency=1, queue_timeout=0.0)
RATED_1S = LimitConfig(rate=1.0, burst=1, queue_timeout=1.0)
PROBE_BRIEF = LimitConfig(concurrency=1, queue_timeout=2.0, circuit_failures=1, circuit_cooloff=5.0)

SHARE = "workers: each of 2 enforces concurrency and burst halved (>= 1), rate halved"

QUEUE = [
    Scenario(
        "cap-then-queue",
        "at the cap the next request queues; a release hands its slot to the head",
        [
            Acquire("a", TWO),
            Acquire("b", TWO, By(local=ADMITTED, workers=QUEUED, redis=ADMITTED)),
            Acquire("c", TWO, QUEUED),
            Check(
                in_flight=By(local=2, workers=1, redis=2), queued=By(local=1, workers=2, redis=1)
            ),
            Release("a"),
            Expect("b", ADMITTED),
            Expect("c", By(local=ADMITTED, workers=QUEUED, redis=ADMITTED)),
            Check(
                in_flight=By(local=2, workers=1, redis=2), queued=By(local=0, workers=1, redis=0)
            ),
        ],
        differs=SHARE,
    ),
    Scenario(
        "fifo",
        "queued requests are admitted in arrival order, one per release",
        [
            Acquire("holder", ONE),
            *[Acquire(f"w{n}", ONE, QUEUED) for n in range(4)],
            Release("holder"),
            Expect("w0", ADMITTED),
            *[Expect(f"w{n}", QUEUED) for n in (1, 2, 3)],
            Release("w0"),
            Expect("w1", ADMITTED),
            Expect("w2", QUEUED),
            Release("w1"),
            Expect("w2", ADMITTED),
            Expect("w3", QUEUED),
            Release("w2"),
            Expect("w3", ADMITTED),
        ],
    ),
    Scenario(
        "no-barging",
        "a newcomer queues behind the queue, even as a slot frees or a token appears",
        [
            Acquire("holder", ONE),
            Acquire("first", ONE, QUEUED),
            Together(Release("holder"), Acquire("late", ONE, QUEUED)),
            Expect("first", ADMITTED),
            Release("first"),
            Expect("late", ADMITTED),
            Release("late"),
            Acquire("spends", RATED),
            Release("spends"),
            Acquire("head", RATED, QUEUED),
            # The token is there before any timer looks, and the newcomer comes first.
            Together(Advance(2.0), Acquire("newcomer", RATED, QUEUED)),
            Expect("head", ADMITTED),
            Expect("newcomer", QUEUED),
            Advance(2.0),
            Expect("newcomer", ADMITTED),
        ],
    ),
    Scenario(
        "queue-full",
        "a full queue refuses at once, queue-full, retry_after the queue timeout",
        [
            Acquire("holder", SMALL_QUEUE),
            Acquire("w0", SMALL_QUEUE, QUEUED),
            Acquire("w1", SMALL_QUEUE, QUEUED),
            Acquire("x", SMALL_QUEUE, Refused(Reason.QUEUE_FULL, 10)),
            Check(in_flight=1, queued=2),
        ],
    ),
    Scenario(
        "no-queue",
        "queue: 0 refuses the excess at once; a freed slot admits the next at once",
        [
            Acquire("a", NO_QUEUE),
            Acquire(
                "b",
                NO_QUEUE,
                By(local=ADMITTED, workers=Refused(Reason.QUEUE_FULL, 10), redis=ADMITTED),
            ),
            Acquire("c", NO_QUEUE, Refused(Reason.QUEUE_FULL, 10)),
            Release("a"),
            Acquire("d", NO_QUEUE),
        ],
        differs=SHARE,
    ),
    Scenario(
        "queue-timeout",
        "a request that waits out its queue timeout is refused queue-timeout; others wait on",
        [
            Acquire("holder", SHORT_WAIT),
            Acquire("early", SHORT_WAIT, QUEUED),
            Advance(1.0),
            Acquire("late", SHORT_WAIT, QUEUED),
            Advance(1.9),
            Expect("early", QUEUED),
            Advance(0.1),
            Expect("early", Refused(Reason.QUEUE_TIMEOUT, 3)),
            Expect("late", QUEUED),
            Check(in_flight=1, queued=1),
            Release("holder"),
            Expect("late", ADMITTED),
        ],
    ),
    Scenario(
        "zero-wait",
        "queue_timeout: 0 waits for nothing: a request the cap cannot take is refused",
        [
            Acquire("holder", NO_WAIT),
            Acquire("x", NO_WAIT, None),
            Expect("x", Refused(Reason.QUEUE_TIMEOUT, 1)),
            Check(in_flight=1, queued=0),
        ],
        differs="local: refused by its deadline timer before it could be seen waiting; "
        "redis: queued until its first poll",
    ),
    Scenario(
        "cancel-while-queued",
        "a waiter that goes away leaves the queue; the slot goes to the one behind it",
        [
            Acquire("holder", ONE),
            Acquire("doomed", ONE, QUEUED),
            Acquire("behind", ONE, QUEUED),
            Cancel("doomed"),
            Expect("doomed", CANCELLED),
            Check(queued=1),
            Release("holder"),
            Expect("behind", ADMITTED),
            Check(in_flight=1, queued=0),
        ],
    ),
    Scenario(
        "cancel-at-admission",
        "a waiter cancelled as its slot comes gives the slot back, and on to the next",
        [
            Acquire("holder", ONE),
            Acquire("doomed", ONE, QUEUED),
            Acquire("behind", ONE, QUEUED),
            Together(Release("holder"), Cancel("doomed")),
            Expect("doomed", CANCELLED),
            Expect("behind", ADMITTED),
            Check(in_flight=1, queued=0),
        ],
    ),
    Scenario(
        "queued-ms",
        "queued_ms is the time from arrival to admission, by the limiter's clock",
        [
            Acquire("holder", ONE),
            Expect("holder", ADMITTED, queued_ms=0.0),
            Acquire("waiter", ONE, QUEUED),
            Advance(0.25),
            Release("holder"),
            Expect("waiter", ADMITTED, queued_ms=250.0),
        ],
    ),
    Scenario(
        "release-once",
        "a slot released twice frees one place",
        [
            Acquire("a", ONE),
            Acquire("b", ONE, QUEUED),
            Release("a", times=2),
            Expect("b", ADMITTED),
            Acquire("c", ONE, QUEUED),
            Check(in_flight=1, queued=1),
        ],
    ),
    Scenario(
        "reload-widens",
        "a reload that raises the cap admits the queued requests, in order",
        [
            Acquire("holder", ONE),
            Acquire("w0", ONE, QUEUED),
            Acquire("w1", ONE, QUEUED),
            Acquire("wider", FOUR, By(local=ADMITTED, workers=QUEUED, redis=None)),
            Acquire("wider2", FOUR, QUEUED),
            Expect("w0", ADMITTED),
            Expect("w1", By(local=ADMITTED, workers=QUEUED, redis=ADMITTED)),
            Expect("wider", By(local=ADMITTED, workers=QUEUED, redis=ADMITTED)),
            Expect("wider2", QUEUED),
            Check(in_flight=By(local=4, workers=2, redis=4)),
        ],
        differs=SHARE + "; redis: the reload reaches the waiters with their next poll, so "
        "the first request under it may queue behind them until then. Every limiter (each "
        "replica of a fleet, each worker) applies a reload with its next acquire for the key: "
        "here the two newcomers bring it to both replicas of the fleet",
    ),
]

RATE = [
    Scenario(
        "rate-tokens",
        "the burst passes, then one request per 1/rate seconds",
        [
            Acquire("a", RATED),
            Acquire("b", RATED, QUEUED),
            Advance(0.5),
            Expect("b", QUEUED),
            Advance(0.5),
            Expect("b", By(local=ADMITTED, workers=QUEUED, redis=ADMITTED)),
            Advance(1.0),
            Expect("b", ADMITTED, queued_ms=By(local=1000.0, workers=2000.0, redis=1000.0)),
        ],
        differs=SHARE,
    ),
    Scenario(
        "rate-limited",
        "a request whose token cannot come within the queue timeout is refused rate-limited, "
        "retry_after when it could",
        [
            Acquire("a", RATED_2S),
            Acquire("w1", RATED_2S, QUEUED),
            Acquire(
                "w2",
                RATED_2S,
                By(local=QUEUED, workers=Refused(Reason.RATE_LIMITED, 4), redis=QUEUED),
            ),
            Acquire(
                "x",
                RATED_2S,
                By(
                    local=Refused(Reason.RATE_LIMITED, 3),
                    workers=Refused(Reason.RATE_LIMITED, 4),
                    redis=Refused(Reason.RATE_LIMITED, 3),
                ),
            ),
            Advance(1.0),
            Expect("w1", By(local=ADMITTED, workers=QUEUED, redis=ADMITTED)),
            Advance(1.0),
            Expect("w1", ADMITTED),
            Expect(
                "w2", By(local=ADMITTED, workers=Refused(Reason.RATE_LIMITED, 4), redis=ADMITTED)
            ),
        ],
        differs=SHARE,
    ),
    Scenario(
        "admission-before-timeout",
        "a token due exactly at a waiter's deadline admits it: admission comes first",
        [
            Acquire("a", RATED_1S),
            Acquire(
                "w",
                RATED_1S,
                By(local=QUEUED, workers=Refused(Reason.RATE_LIMITED, 2), redis=QUEUED),
            ),
            Advance(1.0),
            Expect(
                "w", By(local=ADMITTED, workers=Refused(Reason.RATE_LIMITED, 2), redis=ADMITTED)
            ),
        ],
        differs=SHARE,
    ),
    Scenario(
        "rate-without-queue",
        "with queue: 0, a request without a token is refused rate-limited, not queue-full",
        [
            Acquire("a", RATED_NO_QUEUE),
            Release("a"),
            Acquire("b", RATED_NO_QUEUE, Refused(Reason.RATE_LIMITED, 1)),
            Advance(0.5),
            Acquire(
                "c",
                RATED_NO_QUEUE,
                By(local=ADMITTED, workers=Refused(Reason.RATE_LIMITED, 1), redis=ADMITTED),
            ),
            Advance(0.5),
            Acquire("d", RATED_NO_QUEUE),
        ],
        differs=SHARE,
    ),
    Scenario(
        "rate-reload",
        "a reload keeps the tokens spent (no fresh burst); removing the rate lifts it",
        [
            Acquire("a", SLOW),
            Release("a"),
            Acquire("faster", FAST, QUEUED),
            Advance(0.2),
            Expect("faster", By(local=ADMITTED, workers=QUEUED, redis=ADMITTED)),
            Advance(0.2),
            Expect("faster", ADMITTED),
            Release("faster"),
            Acquire("free0", UNLIMITED),
            Acquire("free1", UNLIMITED),
        ],
        differs=SHARE,
    ),
]

PAUSE = [
    Scenario(
        "pause",
        "a 429 or 503 with Retry-After pauses the destination: requests wait until it ends",
        [
            Acquire("a", FIVE),
            Report("neutral", status=429, retry_after=5.0, via="a"),
            Release("a"),
            Events(("destination_paused", {"pause_s": 5.0, "status": 429, "retry_after_s": 5.0})),
            Acquire("b", FIVE, QUEUED),
            Acquire("c", FIVE, QUEUED),
            Advance(4.5),
            Expect("b", QUEUED),
            Advance(0.5),
            Expect("b", ADMITTED),
            Expect("c", ADMITTED),
            Events(),
        ],
    ),
    Scenario(
        "pause-past-deadline",
        "a pause that outlasts a waiter's deadline refuses it at once; new requests are "
        "refused with the rest of the pause",
        [
            Report("neutral", status=429, retry_after=3.0),
            Acquire("early", PATIENT, QUEUED),
            Advance(1.0),
            Acquire("late", PATIENT, QUEUED),
            Report("failure", status=503, retry_after=9.5),
            Expect("early", Refused(Reason.QUEUE_TIMEOUT, 10)),
            Expect("late", QUEUED),
            Acquire("hasty", HASTY, Refused(Reason.QUEUE_TIMEOUT, 10)),
            Advance(4.0),
            Acquire("hasty2", HASTY, Refused(Reason.QUEUE_TIMEOUT, 6)),
            Advance(5.5),
            Expect("late", ADMITTED),
        ],
    ),
    Scenario(
        "pause-within-timeout",
        "a pause shorter than the queue timeout keeps the waiters",
        [
            Acquire("holder", ONE),
            Acquire("waiter", ONE, QUEUED),
            Report("neutral", status=429, retry_after=4.0, via="holder"),
            Release("holder"),
            Advance(3.5),
            Expect("waiter", QUEUED),
            Advance(0.5),
            Expect("waiter", ADMITTED),
        ],
    ),
    Scenario(
        "pause-clamped",
        "a pause is clamped to retry_after_max, and a shorter one does not shorten it",
        [
            Acquire("a", CLAMPED),
            Release("a"),
            Report("neutral", status=429, retry_after=1e9),
            Events(("destination_paused", {"pause_s": 60.0, "status": 429})),
            Acquire("x", CLAMPED, Refused(Reason.QUEUE_TIMEOUT, 60)),
            Report("neutral", status=429, retry_after=5.0),
            Events(),
            Acquire("y", CLAMPED, Refused(Reason.QUEUE_TIMEOUT, 60)),
        ],
    ),
    Scenario(
        "no-pause",
        "no pause without a 429/503 and a positive Retry-After",
        [
            Report("neutral", status=500, retry_after=30.0),
            Report("neutral", status=200, retry_after=30.0),
            Report("neutral", status=429),
            Report("neutral", status=503),
            Report("neutral", status=429, retry_after=0.0),
            Acquire("a", LimitConfig(queue=0)),
            Events(),
        ],
    ),
]

CIRCUIT = [
    Scenario(
        "circuit-lifecycle",
        "N failures open the circuit; after the cool-off one probe goes; a failed probe "
        "re-opens it, a good one closes it",
        [
            *failures("f", BREAKER, 2),
            Check(circuit="closed", failures=2),
            *failures("g", BREAKER, 1),
            Events(("circuit_opened", {"from": "closed", "failures": 3, "cooloff_s": 30.0})),
            Check(circuit="open"),
            Acquire("x", BREAKER, Refused(Reason.CIRCUIT_OPEN, 30)),
            Advance(10.5),
            Acquire("y", BREAKER, Refused(Reason.CIRCUIT_OPEN, 20)),
            Advance(19.5),
            Check(circuit="half-open"),
            Acquire("probe", BREAKER),
            Events(("circuit_half_open", {"cooloff_s": 30.0})),
            Acquire("other", BREAKER, Refused(Reason.CIRCUIT_OPEN, 1)),
            Report("failure", via="probe"),
            Release("probe"),
            Events(("circuit_opened", {"from": "half-open", "failures": 4})),
            Acquire("z", BREAKER, Refused(Reason.CIRCUIT_OPEN, 30)),
            Advance(30.0),
            Acquire("probe2", BREAKER),
            Report("success", via="probe2"),
            Release("probe2"),
            Events(
                "circuit_half_open",
                ("circuit_closed", {"from": "half-open", "why": "probe-succeeded"}),
            ),
            *[Acquire(f"ok{n}", BREAKER) for n in range(3)],
            Check(circuit="closed", failures=0),
        ],
    ),
    Scenario(
        "circuit-refuses-queue",
        "when the circuit opens, everyone queued is refused circuit-open at once",
        [
            Acquire("holder", TRIP_ONE),
            *[Acquire(f"w{n}", TRIP_ONE, QUEUED) for n in range(3)],
            Report("failure", via="holder"),
            *[Expect(f"w{n}", Refused(Reason.CIRCUIT_OPEN, 7)) for n in range(3)],
            Check(in_flight=1, queued=0, circuit="open"),
            Release("holder"),
        ],
    ),
    Scenario(
        "circuit-ignores-late-replies",
        "outcomes reported while open (late replies) are ignored: the cool-off stands",
        [
            Acquire("straggler", TRIP),
            *failures("f", TRIP, 1),
            Report("success", via="straggler"),
            Release("straggler"),
            Acquire("x", TRIP, Refused(Reason.CIRCUIT_OPEN, 10)),
            Check(circuit="open", failures=1),
        ],
    ),
    Scenario(
        "probe-without-verdict",
        "a probe that ends without a verdict (neutral, or no report) lets the next one probe",
        [
            *failures("f", PROBE, 1),
            Advance(5.0),
            Acquire("p1", PROBE),
            Report("neutral", via="p1"),
            Acquire("x1", PROBE, Refused(Reason.CIRCUIT_OPEN, 1)),
            Release("p1"),
            Acquire("p2", PROBE),
            Acquire("x2", PROBE, Refused(Reason.CIRCUIT_OPEN, 1)),
            Release("p2"),
            Acquire("p3", PROBE),
            Report("success", via="p3"),
            Release("p3"),
            Check(circuit="closed"),
        ],
    ),
    Scenario(
        "probe-cancelled",
        "a probe cancelled while it queues lets the next request be the probe",
        [
            Acquire("straggler", PROBE_ONE),
            Report("failure", via="straggler"),  # opens; the straggler still holds the slot
            Advance(5.0),
            Acquire("probe", PROBE_ONE, QUEUED),
            Acquire("x", PROBE_ONE, Refused(Reason.CIRCUIT_OPEN, 1)),
            Cancel("probe"),
            Expect("probe", CANCELLED),
            Acquire("second", PROBE_ONE, QUEUED),
            Release("straggler"),
            Expect("second", ADMITTED),
            Report("success", via="second"),
            Release("second"),
            Check(circuit="closed"),
        ],
    ),
    Scenario(
        "probe-times-out",
        "a probe that waits out its queue timeout lets the next request be the probe",
        [
            Acquire("straggler", PROBE_BRIEF),
            Report("failure", via="straggler"),
            Advance(5.0),
            Acquire("probe", PROBE_BRIEF, QUEUED),
            Acquire("x", PROBE_BRIEF, Refused(Reason.CIRCUIT_OPEN, 1)),
            Advance(2.0),
            Expect("probe", Refused(Reason.QUEUE_TIMEOUT, 2)),
            Acquire("second", PROBE_BRIEF, QUEUED),
            Release("straggler"),
            Expect("second", ADMITTED),
            Report("success", via="second"),
            Release("second"),
            Check(circuit="closed"),
        ],
    ),
    Scenario(
        "straggler-decides",
        "half-open, any success or failure decides, the probe's or a straggler's",
        [
            Acquire("straggler", PROBE),
            *failures("f", PROBE, 1),
            Advance(5.0),
            Acquire("probe", PROBE),
            Events("circuit_opened", "circuit_half_open"),
            Report("success", via="straggler"),
            Release("straggler"),
            Events(("circuit_closed", {"from": "half-open", "why": "probe-succeeded"})),
            Acquire("after", PROBE),
            Check(circuit="closed", failures=0, in_flight=2),
        ],
    ),
    Scenario(
        "failures-consecutive",
        "a success resets the count of consecutive failures; a neutral outcome neither "
        "counts nor resets",
        [
            *failures("f", BREAKER, 2),
            Acquire("ok", BREAKER),
            Report("success", via="ok"),
            Release("ok"),
            *failures("g", BREAKER, 2),
            Acquire("meh", BREAKER),
            Report("neutral", via="meh"),
            Release("meh"),
            Check(circuit="closed", failures=2),
            *failures("h", BREAKER, 1),
            Check(circuit="open"),
        ],
    ),
    Scenario(
        "circuit-disabled",
        "circuit_failures: 0 disables the breaker; a reload that disables it closes it",
        [
            *failures("f", OFF, 8),
            Events(),
            Check(circuit="closed", failures=0),
            *failures("g", ON, 1, key="j"),
            Events("circuit_opened"),
            Acquire("reloaded", OFF, key="j"),
            Events(("circuit_closed", {"from": "open", "why": "disabled"})),
        ],
    ),
]

ISOLATION = [
    Scenario(
        "keys-independent",
        "a full, paused or failing destination never affects another",
        [
            Acquire("a", ISOLATED, key="a"),
            Acquire("a1", ISOLATED, QUEUED, key="a"),
            Acquire("a2", ISOLATED, QUEUED, key="a"),
            Report("neutral", status=429, retry_after=5.0, key="a"),
            Acquire("a3", ISOLATED, Refused(Reason.QUEUE_FULL, 5), key="a"),
            Acquire("b", ISOLATED, key="b"),
            Release("b"),
            Report("failure", key="a", via="a"),
            Expect("a1", Refused(Reason.CIRCUIT_OPEN, 30)),
            Expect("a2", Refused(Reason.CIRCUIT_OPEN, 30)),
            Acquire("b2", ISOLATED, key="b"),
            Release("a"),
            Check(key="a", in_flight=0, queued=0, circuit="open", failures=1),
            Check(key="b", in_flight=1, queued=0, circuit="closed", failures=0),
        ],
    ),
    Scenario(
        "every-verdict-releases",
        "whatever the verdict (success, failure, neutral, none), the slot comes back",
        [
            Acquire("s", ONE),
            Report("success", via="s"),
            Release("s"),
            Acquire("f", ONE),
            Report("failure", status=502, via="f"),
            Release("f"),
            Acquire("n", ONE),
            Report("neutral", status=404, via="n"),
            Release("n"),
            Acquire("quiet", ONE),
            Release("quiet"),
            Check(in_flight=0, queued=0, failures=1),
        ],
    ),
]

SCENARIOS = QUEUE + RATE + PAUSE + CIRCUIT + ISOLATION


def _implementations() -> list[object]:
    return [
        pytest.param(name, marks=needs_redis, id=name) if name.startswith("redis") else name
        for name in IMPLEMENTATIONS
    ]


@pytest.fixture(params=_implementations())
def implementation(request: pytest.FixtureRequest) -> str:
    """Which limiter a scenario runs against (``limiters.IMPLEMENTATIONS``)."""
    name: str = request.param
    return name


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_contract(scenario: Scenario, implementation: str, request: pytest.FixtureRequest) -> None:
    def redis_url() -> str:
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        return server.url

    async def run() -> None:
        async with driver(implementation, redis_url) as limiters:
            await play(scenario, limiters)

    asyncio.run(asyncio.wait_for(run(), timeout=60))


def test_scenario_ids_are_unique() -> None:
    ids = [scenario.id for scenario in SCENARIOS]
    assert len(ids) == len(set(ids))
