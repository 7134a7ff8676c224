"""The addon chain is a stated contract: ``pipeline.ORDER`` equals the chain, and its rows hold.

The first tests check the table against the chain (no stale row, no handler whose place in a
shared hook is unstated). The rest show, row by row, that a constraint is needed: the real
addons, built by ``build_pipeline``, with that row's two addons swapped, driven in process
through mitmproxy's own addon manager (``taddons``), go wrong in a way the real order does
not.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mitmproxy import exceptions, hooks, http, options
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import server_hooks
from mitmproxy.test import tflow

import hookwall
from hookwall import pipeline
from hookwall.access.addon import AccessControl
from hookwall.bounds.addons.bodycaps import BodyCaps
from hookwall.bounds.addons.connections import ConnectionGuard
from hookwall.bounds.addons.deadlines import Deadlines
from hookwall.core.headers import INTERNAL as INTERNAL_HEADER
from hookwall.core.headers import REPLAY_OF as REPLAY_HEADER
from hookwall.deliveries.addons.correlate import Correlation
from hookwall.deliveries.addons.exchangelog import ExchangeLog
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.destinations.decide import Decision
from hookwall.destinations.resolver import Resolver
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, start_state, state_of
from hookwall.forwarding.addons.hopheaders import HopHeaders
from hookwall.forwarding.addons.lifecycle import ExchangeEnd, Lifecycle
from hookwall.limits.addon import FloodControl, limit_key
from hookwall.pipeline import ORDER, ORDER_FREE, Order, build_pipeline, describe, order_violations
from hookwall.policy import load_default_policy, load_policy
from hookwall.policy.model import Settings, merge_rule
from hookwall.redirects.addon import InternalHops, Redirects
from hookwall.retries.addon import Retries
from hookwall.selfanswer.addon import SelfAnswer
from hookwall.signing.addon import RequestSigning
from tests.support.dnsserver import TestDnsServer
from tests.unit.support.mitm import (
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHook,
    addon_context,
    update_options,
)

# -- the table and the chain ----------------------------------------------------------------------


def _runtime() -> Runtime:
    return Runtime(load_default_policy(), Resolver([("127.0.0.1", 9)]))


def _chain(tmp_path: Path) -> list[object]:
    """The full chain, the delivery store included (so its rows are checked too)."""

    async def build() -> list[object]:
        return build_pipeline(_runtime(), tmp_path).addons

    return asyncio.run(build())


def hooks_of(addon: type) -> set[str]:
    """The mitmproxy events an addon class handles (what the manager would call it for)."""
    return {name for name in dir(addon) if name in hooks.all_hooks}


def _ours(addon: type) -> bool:
    return addon.__module__.startswith(hookwall.__name__ + ".")


def test_every_row_names_two_addons_of_the_chain_that_handle_its_hooks(tmp_path: Path) -> None:
    types = [type(addon) for addon in _chain(tmp_path)]
    for row in ORDER:
        assert row.first in types and row.then in types, describe(row)
        assert row.hooks and row.why, describe(row)
        for hook in row.hooks:
            assert hook in hooks_of(row.first), f"stale row, {row.first.__name__}: {hook}"
            assert hook in hooks_of(row.then), f"stale row, {row.then.__name__}: {hook}"
    for free in ORDER_FREE:
        assert free.addon in types and free.why
        assert set(free.hooks) <= hooks_of(free.addon), f"stale ORDER_FREE: {free}"


def test_every_handler_of_a_shared_hook_has_a_stated_place(tmp_path: Path) -> None:
    """A hook two of our addons handle: each of them is in a row for it, or free in it."""
    ours = [type(addon) for addon in _chain(tmp_path) if _ours(type(addon))]
    stated = {(row.first, hook) for row in ORDER for hook in row.hooks}
    stated |= {(row.then, hook) for row in ORDER for hook in row.hooks}
    stated |= {(free.addon, hook) for free in ORDER_FREE for hook in free.hooks}
    for hook in sorted(set().union(*(hooks_of(addon) for addon in ours))):
        handlers = [addon for addon in ours if hook in hooks_of(addon)]
        if len(handlers) < 2:
            continue
        unstated = [a.__name__ for a in handlers if (a, hook) not in stated]
        assert not unstated, f"{hook}: no row or ORDER_FREE entry for {unstated}"


def test_one_row_per_pair() -> None:
    pairs = [(row.first, row.then) for row in ORDER]
    assert len(pairs) == len(set(pairs)), "merge the rows of one pair (their hooks and why)"


def test_the_real_chain_breaks_no_row(tmp_path: Path) -> None:
    assert order_violations(_chain(tmp_path)) == []


@pytest.mark.parametrize("row", ORDER, ids=lambda row: f"{row.first.__name__}-{row.then.__name__}")
def test_swapping_a_rows_addons_breaks_exactly_that_row(row: Order, tmp_path: Path) -> None:
    assert order_violations([row.then, row.first]) == [describe(row)]
    assert order_violations([row.first, row.then]) == []
    assert describe(row) in order_violations(swapped(_chain(tmp_path), row.first, row.then))


def test_the_master_refuses_a_chain_out_of_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from hookwall.app import master

    def reordered(*args: object, **kwargs: object) -> pipeline.Pipeline:
        built = build_pipeline(*args, **kwargs)  # type: ignore[arg-type]
        return dataclasses.replace(built, addons=swapped(built.addons, Correlation, HopHeaders))

    monkeypatch.setattr(master, "build_pipeline", reordered)

    async def build() -> None:
        with pytest.raises(RuntimeError, match="Correlation must come before HopHeaders"):
            master.HookwallMaster(options.Options(), _runtime())

    asyncio.run(build())


# -- each constraint is needed ---------------------------------------------------------------------


def swapped(chain: list[object], a: type, b: type) -> list[object]:
    """The chain with the addons of types ``a`` and ``b`` exchanging places (test only)."""
    types = [type(addon) if not isinstance(addon, type) else addon for addon in chain]
    i, j = types.index(a), types.index(b)
    out = list(chain)
    out[i], out[j] = out[j], out[i]
    return out


def only(chain: list[object], *kinds: type) -> list[object]:
    """The addons of these types, in the chain's order: the ones a case needs."""
    return [addon for addon in chain if type(addon) in kinds]


@dataclasses.dataclass
class Bench:
    runtime: Runtime
    built: pipeline.Pipeline

    def chain(self, swap: tuple[type, type] | None, *kinds: type) -> list[object]:
        """The addons of these kinds, in the (swapped) chain's order, and mitmproxy's
        Proxyserver, which the adapters ask for connections (``flow/conns.py``)."""
        addons = self.built.addons if swap is None else swapped(self.built.addons, *swap)
        return only(addons, *kinds, proxyserver.Proxyserver)


@pytest.fixture
def bench() -> Iterator[Bench]:
    runtime = _runtime()
    yield Bench(runtime, build_pipeline(runtime))


Step = hooks.Hook | Callable[[], object]


def run(chain: list[object], *steps: Step) -> None:
    """Deliver the events to the chain through mitmproxy's addon manager, in order, in one
    event loop; a plain callable between them stands for what other addons did meanwhile."""

    async def go() -> None:
        with addon_context(*chain, loadcore=False) as tctx:
            for step in steps:
                if isinstance(step, hooks.Hook):
                    await tctx.master.addons.trigger_event(step)
                else:
                    step()

    asyncio.run(go())


def connected(flow: http.HTTPFlow) -> hooks.Hook:
    return server_hooks.ClientConnectedHook(flow.client_conn)


ORDERS = [None, "swapped"]


@pytest.mark.parametrize("order", ORDERS)
def test_a_hop_begins_on_its_own_state_or_a_drain_never_ends(bench: Bench, order: str) -> None:
    """InternalHops -> Lifecycle: the in-flight hold is on the state the hop keeps."""
    swap = (InternalHops, Lifecycle) if order else None
    chain = bench.chain(swap, InternalHops, Lifecycle, ExchangeEnd)
    flow = tflow.tflow(resp=True)
    flow.request.headers[INTERNAL_HEADER] = f"{bench.runtime.internal_token} rid=r1 hop=1"
    inflight: list[int] = []
    count = lambda: inflight.append(bench.built.lifecycle.inflight)  # noqa: E731
    run(chain, connected(flow), HttpRequestHeadersHook(flow), count, HttpResponseHook(flow))
    assert inflight == [1]
    state = state_of(flow)
    assert state is not None and state.internal and state.request_id == "r1"
    # In the swapped order the count stays at 1 for ever: shutdown waits for a ghost.
    assert bench.built.lifecycle.inflight == (1 if order else 0)


@pytest.mark.parametrize("order", ORDERS)
def test_a_hop_is_recognised_before_its_marker_is_stripped(bench: Bench, order: str) -> None:
    """InternalHops -> HopHeaders."""
    swap = (InternalHops, HopHeaders) if order else None
    chain = bench.chain(swap, InternalHops, HopHeaders)
    flow = tflow.tflow()
    flow.request.headers[INTERNAL_HEADER] = f"{bench.runtime.internal_token} rid=r2 attempt=2"
    run(chain, HttpRequestHeadersHook(flow))
    state = state_of(flow)
    assert INTERNAL_HEADER not in flow.request.headers
    if order:  # hookwall's own retry is taken for a stranger's request: a new delivery
        assert state is None
    else:
        assert state is not None and state.internal and state.attempt == 2


@pytest.mark.parametrize("order", ORDERS)
def test_replay_of_is_read_before_hop_headers_strip_it(bench: Bench, order: str) -> None:
    """Correlation -> HopHeaders."""
    swap = (Correlation, HopHeaders) if order else None
    chain = bench.chain(swap, Lifecycle, Correlation, HopHeaders)
    flow = tflow.tflow()
    flow.request.headers[REPLAY_HEADER] = "0123abcd"
    run(chain, connected(flow), HttpRequestHeadersHook(flow))
    state = state_of(flow)
    assert state is not None and REPLAY_HEADER not in flow.request.headers
    assert state.replay_of == (None if order else "0123abcd")


@pytest.mark.parametrize("order", ORDERS)
def test_replay_of_is_kept_on_the_state_the_exchange_began(bench: Bench, order: str) -> None:
    """Lifecycle -> Correlation: before the exchange began there is no state to keep it on."""
    swap = (Lifecycle, Correlation) if order else None
    chain = bench.chain(swap, Lifecycle, Correlation)
    flow = tflow.tflow()
    flow.request.headers[REPLAY_HEADER] = "0123abcd"
    run(chain, connected(flow), HttpRequestHeadersHook(flow))
    state = state_of(flow)
    assert state is not None
    assert state.replay_of == (None if order else "0123abcd")


def _judged(bench: Bench, flow: http.HTTPFlow, settings: Settings | None = None) -> FlowState:
    """The flow as the guard leaves it: allowed, for these settings (no DNS needed)."""
    state = start_state(flow, bench.runtime.policy, None)
    settings = settings or bench.runtime.policy.defaults
    state.decision = Decision(True, None, "allowed", "receiver.test", 80, settings=settings)
    return state


def _state(flow: http.HTTPFlow) -> FlowState:
    state = state_of(flow)
    assert state is not None
    return state


def _slot_key(bench: Bench, flow: http.HTTPFlow) -> str:
    settings = bench.runtime.policy.defaults
    peer = (flow.client_conn.peername or ("-",))[0]
    return limit_key(settings, "receiver.test", 80, peer)


def _row(bench: Bench, key: str) -> dict[str, object]:
    rows = [row for row in bench.runtime.limiter.snapshot() if row["key"] == key]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("order", ORDERS)
def test_a_refused_connect_opens_the_circuit_only_once_classified(bench: Bench, order: str) -> None:
    """Lifecycle -> FloodControl in ``error``: the circuit reads the classified verdict."""
    swap = (Lifecycle, FloodControl) if order else None
    chain = bench.chain(swap, Lifecycle, FloodControl, ExchangeEnd)
    flow = tflow.tflow()
    slotted: list[bool] = []
    run(
        chain,
        connected(flow),
        HttpRequestHeadersHook(flow),
        lambda: _judged(bench, flow),
        HttpRequestHook(flow),
        lambda: slotted.append(_state(flow).slot is not None),
        lambda: setattr(flow, "error", tflow.terr("Connection refused")),
        HttpErrorHook(flow),
    )
    assert slotted == [True]
    # Swapped: the refused connect counted as neutral, the circuit never learns of it.
    assert _row(bench, _slot_key(bench, flow))["failures"] == (0 if order else 1)
    assert _row(bench, _slot_key(bench, flow))["in_flight"] == 0


@pytest.mark.parametrize("order", ORDERS)
def test_the_verdict_is_given_with_the_slot_before_the_exchange_ends(
    bench: Bench, order: str
) -> None:
    """FloodControl -> ExchangeEnd: after the end, the slot has gone back without a verdict."""
    swap = (FloodControl, ExchangeEnd) if order else None
    chain = bench.chain(swap, Lifecycle, FloodControl, ExchangeEnd)
    flow = tflow.tflow()
    run(
        chain,
        connected(flow),
        HttpRequestHeadersHook(flow),
        lambda: _judged(bench, flow),
        HttpRequestHook(flow),
        lambda: setattr(flow, "error", tflow.terr("Connection refused")),
        HttpErrorHook(flow),
    )
    assert _row(bench, _slot_key(bench, flow))["failures"] == (0 if order else 1)


@pytest.mark.parametrize("order", ORDERS)
def test_a_body_too_big_never_takes_a_slot(bench: Bench, order: str) -> None:
    """BodyCaps -> FloodControl in ``request``."""
    swap = (BodyCaps, FloodControl) if order else None
    chain = bench.chain(swap, Lifecycle, BodyCaps, FloodControl, ExchangeEnd)
    flow = tflow.tflow()
    cap = bench.runtime.policy.defaults.max_request_body

    def body_arrived() -> None:
        _judged(bench, flow)
        flow.request.content = b"x" * (cap + 1)

    run(chain, connected(flow), HttpRequestHeadersHook(flow), body_arrived, HttpRequestHook(flow))
    state = state_of(flow)
    assert state is not None
    assert state.denial is not None and state.denial.reason == "request-too-large"
    # Swapped: the refused request drew from (and could have queued for) the budget.
    assert (state.limit_key is not None) == bool(order)


@pytest.mark.parametrize("order", ORDERS)
def test_the_receivers_clocks_start_only_once_admitted(bench: Bench, order: str) -> None:
    """FloodControl -> Deadlines in ``request``: time queued is not the receiver's."""
    swap = (FloodControl, Deadlines) if order else None
    chain = bench.chain(swap, Lifecycle, FloodControl, Deadlines, ExchangeEnd)
    settings = bench.runtime.policy.defaults
    config = settings.limits.config

    async def go() -> None:
        flow = tflow.tflow()
        key = _slot_key(bench, flow)
        with addon_context(*chain, loadcore=False) as tctx:
            trigger = tctx.master.addons.trigger_event
            await trigger(connected(flow))
            await trigger(HttpRequestHeadersHook(flow))
            _judged(bench, flow)
            taken = [
                await bench.runtime.limiter.acquire(key, config) for _ in range(config.concurrency)
            ]
            task = asyncio.create_task(trigger(HttpRequestHook(flow)))
            for _ in range(100):  # the hook reaches the queue at its first await
                if _row(bench, key)["queued"] == 1:
                    break
                await asyncio.sleep(0)
            else:
                pytest.fail("the request never queued for a slot")
            # Swapped: the response clocks run while the request waits for a slot.
            assert (_state(flow).clocks is not None) == bool(order)
            taken.pop().release()
            await task
            assert _state(flow).clocks is not None  # admitted: the clocks run now, either way
            await trigger(HttpResponseHook(flow))
            for slot in taken:
                slot.release()

    asyncio.run(go())


def test_the_master_still_exposes_its_parts() -> None:
    """Reload, drain and admin reach these through the master."""
    from hookwall.app.master import HookwallMaster

    async def build() -> None:
        master = HookwallMaster(options.Options(), _runtime())
        for name in ("guard", "lifecycle", "connections", "passthrough"):
            assert getattr(master, name) is not None
        assert master.store is None  # no data dir: no delivery store
        assert master.lifecycle.end in master.addons.chain
        with pytest.raises(exceptions.OptionsError):
            update_options(master.options, ssl_insecure=True)  # SafetyChecks is in the chain

    asyncio.run(build())


SENDERS_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
senders:
  billing:
    credentials: [env:HW_PIPELINE_BILLING]
destinations:
  - hosts: ["*.test"]
"""
BILLING_TOKEN = "billing-token-0123456789abcdefgh"


@pytest.fixture
def senders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bench:
    monkeypatch.setenv("HW_PIPELINE_BILLING", BILLING_TOKEN)
    path = tmp_path / "policy.yaml"
    path.write_text(SENDERS_POLICY)
    runtime = Runtime(load_policy(path), Resolver([("127.0.0.1", 9)]))
    return Bench(runtime, build_pipeline(runtime))


@pytest.mark.parametrize("order", ORDERS)
def test_credentials_are_read_before_hop_headers_strip_them(senders: Bench, order: str) -> None:
    """AccessControl -> HopHeaders: else every sender is asked for credentials it sent."""
    swap = (AccessControl, HopHeaders) if order else None
    chain = senders.chain(swap, Lifecycle, AccessControl, HopHeaders)
    flow = tflow.tflow()
    credential = base64.b64encode(f"billing:{BILLING_TOKEN}".encode()).decode()
    flow.request.headers["Proxy-Authorization"] = f"Basic {credential}"
    run(chain, connected(flow), HttpRequestHeadersHook(flow))
    state = state_of(flow)
    assert state is not None and "Proxy-Authorization" not in flow.request.headers
    if order:
        assert state.denial is not None and state.denial.reason == "auth-required"
    else:
        assert state.denial is None and state.sender == "billing"


@pytest.mark.parametrize("order", ORDERS)
def test_a_hop_keeps_its_sender_without_credentials(senders: Bench, order: str) -> None:
    """InternalHops -> AccessControl: hookwall's own hop carries no Proxy-Authorization."""
    swap = (InternalHops, AccessControl) if order else None
    chain = senders.chain(swap, InternalHops, Lifecycle, AccessControl)
    flow = tflow.tflow()
    marker = f"{senders.runtime.internal_token} rid=r3 hop=1 sender=billing"
    flow.request.headers[INTERNAL_HEADER] = marker
    run(chain, connected(flow), HttpRequestHeadersHook(flow))
    state = state_of(flow)
    assert state is not None and state.internal and state.sender == "billing"
    # Swapped: the hop of an authenticated delivery is answered 407 by hookwall itself.
    assert (flow.response is not None and flow.response.status_code == 407) == bool(order)


@pytest.mark.parametrize("order", ORDERS)
def test_hookwall_invalid_is_answered_for_the_authenticated_sender(
    senders: Bench, order: str
) -> None:
    """AccessControl -> SelfAnswer: whoami tells the sender AccessControl authenticated (and a
    sender without credentials gets the 407: AccessControl answers it either way)."""
    swap = (AccessControl, SelfAnswer) if order else None
    chain = senders.chain(swap, Lifecycle, AccessControl, SelfAnswer)
    flow = tflow.tflow()
    flow.request.method, flow.request.host, flow.request.path = "GET", "hookwall.invalid", "/whoami"
    credential = base64.b64encode(f"billing:{BILLING_TOKEN}".encode()).decode()
    flow.request.headers["Proxy-Authorization"] = f"Basic {credential}"
    run(chain, connected(flow), HttpRequestHeadersHook(flow))
    assert flow.response is not None and flow.response.status_code == 200
    # Swapped: answered before the sender was known, whoami names nobody.
    assert json.loads(flow.response.content or b"")["sender"] == (None if order else "billing")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("connect", [False, True], ids=["request", "connect"])
def test_hookwall_invalid_is_never_judged_by_the_guard(
    bench: Bench, order: str, connect: bool
) -> None:
    """SelfAnswer -> DestinationGuard: the guard skips what SelfAnswer answers; before it, the
    guard would judge hookwall.invalid, and look it up (here nobody answers: refused)."""
    swap = (SelfAnswer, DestinationGuard) if order else None
    chain = bench.chain(swap, Lifecycle, AccessControl, SelfAnswer, DestinationGuard)
    flow = tflow.tflow()
    flow.request.method, flow.request.host, flow.request.path = "GET", "hookwall.invalid", "/"
    if connect:
        flow.request.method, flow.request.port, flow.request.path = "CONNECT", 443, ""
    hook = HttpConnectHook(flow) if connect else HttpRequestHeadersHook(flow)
    run(chain, connected(flow), hook)
    state = state_of(flow)
    assert state is not None and state.self_answered == (not order)
    # Swapped: the guard judged (and tried to resolve) the name hookwall answers itself, and
    # refused it.
    assert (state.decision is not None) == bool(order)
    assert (state.denial is not None) == bool(order)


@pytest.mark.parametrize("order", ORDERS)
def test_a_body_declared_too_big_is_refused_before_it_is_read(senders: Bench, order: str) -> None:
    """DestinationGuard -> BodyCaps: the caps are the judged destination's."""
    swap = (DestinationGuard, BodyCaps) if order else None
    chain = senders.chain(swap, Lifecycle, DestinationGuard, BodyCaps)
    flow = tflow.tflow()
    flow.request.host, flow.request.port = "127.0.0.2", 8080  # a literal: no DNS
    cap = senders.runtime.policy.defaults.max_request_body
    flow.request.headers["Content-Length"] = str(cap + 1)
    run(chain, connected(flow), HttpRequestHeadersHook(flow))
    state = state_of(flow)
    assert state is not None and state.decision is not None and state.decision.allowed
    # Swapped: no cap applies at the head; the sender's body is read before it is refused.
    assert (state.denial is None) == bool(order)
    if not order:
        assert state.denial is not None and state.denial.reason == "request-too-large"


RETRY_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [retry.test]
    retries: {attempts: 1, backoff: 10ms}
"""


def _seen_while_the_response_waits(
    bench: Bench,
    chain: list[object],
    flow: http.HTTPFlow,
    settings: Settings,
    waiting: Callable[[FlowState], bool],
) -> dict[str, bool]:
    """Drive one exchange through ``chain`` to its ``response`` hook and, once ``waiting``
    says a later handler (a retry's wait, a redirect hop) is in progress, note what the first
    attempt still holds; then the sender leaves and everything must be given back."""
    seen: dict[str, bool] = {}

    async def go() -> None:
        with addon_context(*chain, loadcore=False) as tctx:
            trigger = tctx.master.addons.trigger_event
            await trigger(connected(flow))
            await trigger(HttpRequestHeadersHook(flow))
            state = _judged(bench, flow, settings)
            await trigger(HttpRequestHook(flow))
            assert "slot" in state.holds.held() and state.clocks is not None
            task = asyncio.create_task(trigger(HttpResponseHook(flow)))
            for _ in range(100):  # the handler reaches its first await at once
                if waiting(state):
                    break
                await asyncio.sleep(0)  # a turn of the loop, not a timed wait
            else:
                pytest.fail("the response handler never started waiting")
            seen["slot"] = "slot" in state.holds.held()
            seen["clocks"] = state.clocks is not None
            seen["unlogged"] = not state.logged
            # The sender leaves: the exchange ends, what waits stops with it.
            await trigger(server_hooks.ClientDisconnectedHook(flow.client_conn))
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert state.holds.held() == []

    asyncio.run(go())
    return seen


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    "first", [FloodControl, Deadlines, ExchangeLog], ids=lambda kind: kind.__name__
)
def test_the_first_attempt_is_over_before_the_retries(
    tmp_path: Path, first: type, order: str
) -> None:
    """Seen while Retries waits: FloodControl -> Retries (a retry needs a slot of the same
    destination), Deadlines -> Retries (the first attempt's clocks would cut the retries),
    ExchangeLog -> Retries (the first attempt's event is logged before the next is sent)."""
    path = tmp_path / "policy.yaml"
    path.write_text(RETRY_POLICY)
    runtime = Runtime(load_policy(path), Resolver([("127.0.0.1", 9)]))
    bench = Bench(runtime, build_pipeline(runtime))
    swap = (first, Retries) if order else None
    kinds = (Lifecycle, FloodControl, Deadlines, ExchangeLog, Retries, ExchangeEnd)
    chain = bench.chain(swap, *kinds)
    settings = merge_rule(runtime.policy.defaults, runtime.policy.rules[0])
    flow = tflow.tflow(resp=True)
    assert flow.response is not None
    flow.response.status_code = 503
    flow.response.headers["Retry-After"] = "2"  # the retry waits at least this: seen waiting
    seen = _seen_while_the_response_waits(
        bench, chain, flow, settings, lambda state: "retries" in state.holds.held()
    )
    what = {FloodControl: "slot", Deadlines: "clocks", ExchangeLog: "unlogged"}[first]
    if order:
        assert seen[what]
    else:  # the real order: all three are done when the retries begin
        assert seen == {"slot": False, "clocks": False, "unlogged": False}


SCOPED_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
senders:
  billing:
    credentials: [env:HW_PIPELINE_BILLING]
destinations:
  - hosts: [pay.pipeline.test]
    senders: [billing]
  - hosts: ["*.pipeline.test"]
    action: deny
"""


@pytest.fixture
def scoped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dns_server: TestDnsServer
) -> Iterator[Bench]:
    monkeypatch.setenv("HW_PIPELINE_BILLING", BILLING_TOKEN)
    dns_server.add("pay.pipeline.test", "127.0.0.2")
    dns_server.silent("slow.elsewhere.test")
    path = tmp_path / "policy.yaml"
    path.write_text(SCOPED_POLICY)
    runtime = Runtime(load_policy(path), Resolver([dns_server.address]))
    yield Bench(runtime, build_pipeline(runtime))


@pytest.mark.parametrize("order", ORDERS)
def test_the_rule_is_chosen_for_the_authenticated_sender(scoped: Bench, order: str) -> None:
    """AccessControl -> DestinationGuard: a rule scoped to a sender applies to it only once
    it is known."""
    swap = (AccessControl, DestinationGuard) if order else None
    chain = scoped.chain(swap, Lifecycle, AccessControl, DestinationGuard)
    flow = tflow.tflow()
    flow.request.host, flow.request.port = "pay.pipeline.test", 8080
    credential = base64.b64encode(f"billing:{BILLING_TOKEN}".encode()).decode()
    flow.request.headers["Proxy-Authorization"] = f"Basic {credential}"
    run(chain, connected(flow), HttpRequestHeadersHook(flow))
    state = state_of(flow)
    assert state is not None and state.sender == "billing" and state.decision is not None
    # Swapped: judged as nobody's, billing's own destination is refused to billing.
    assert state.decision.allowed == (not order)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("first", [Lifecycle, ConnectionGuard], ids=lambda kind: kind.__name__)
def test_while_the_guard_awaits_dns(scoped: Bench, first: type, order: str) -> None:
    """Lifecycle -> DestinationGuard: the exchange is in flight (a drain waits for it).
    ConnectionGuard -> DestinationGuard: the head deadline has stopped (a slow lookup is not
    a slow sender)."""
    swap = (first, DestinationGuard) if order else None
    chain = scoped.chain(swap, Lifecycle, ConnectionGuard, DestinationGuard, ExchangeEnd)
    lifecycle, connections = scoped.built.lifecycle, scoped.built.connections
    flow = tflow.tflow()
    flow.request.host, flow.request.port = "slow.elsewhere.test", 8080  # never answered

    async def go() -> dict[str, bool]:
        with addon_context(*chain, loadcore=False) as tctx:
            trigger = tctx.master.addons.trigger_event
            await trigger(connected(flow))
            assert len(connections.sweeper) == 1  # the head deadline of a new connection
            task = asyncio.create_task(trigger(HttpRequestHeadersHook(flow)))
            await asyncio.sleep(0)  # the hook runs up to the guard's lookup
            assert not task.done()
            seen = {
                "in flight": lifecycle.inflight == 1,
                "head armed": len(connections.sweeper) == 1,
            }
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await trigger(server_hooks.ClientDisconnectedHook(flow.client_conn))
            connections.sweeper.stop()
            return seen

    seen = asyncio.run(go())
    if not order:
        assert seen == {"in flight": True, "head armed": False}
    elif first is Lifecycle:  # swapped: nothing in flight while judged; a drain exits under it
        assert not seen["in flight"]
    else:  # swapped: the head deadline runs on during the lookup, answered 408 if slow
        assert seen["head armed"]


REDIRECT_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [receiver.test]
    redirects: {mode: follow, scope: any}
"""


@pytest.fixture
def silent_listener() -> Iterator[tuple[str, int]]:
    """A loopback listener that never answers: a hop sent there stays in flight."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()
    sock.close()


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("first", [FloodControl, Deadlines], ids=lambda kind: kind.__name__)
def test_the_first_request_is_over_before_its_redirect_hops(
    tmp_path: Path, silent_listener: tuple[str, int], first: type, order: str
) -> None:
    """Seen while a hop is in flight: FloodControl -> Redirects (a hop may need a slot of the
    same destination) and Deadlines -> Redirects (the first request's clocks would cut it)."""
    path = tmp_path / "policy.yaml"
    path.write_text(REDIRECT_POLICY)
    runtime = Runtime(load_policy(path), Resolver([("127.0.0.1", 9)]))
    runtime.internal_addrs[:] = [silent_listener]  # where hops go: never answered here
    bench = Bench(runtime, build_pipeline(runtime))
    swap = (first, Redirects) if order else None
    chain = bench.chain(swap, Lifecycle, FloodControl, Deadlines, Redirects, ExchangeEnd)
    settings = merge_rule(runtime.policy.defaults, runtime.policy.rules[0])
    flow = tflow.tflow(resp=True)
    flow.request.host, flow.request.port = "receiver.test", 80
    assert flow.response is not None
    flow.response.status_code = 302
    flow.response.headers["Location"] = "http://next.test/hook"
    seen = _seen_while_the_response_waits(
        bench,
        chain,
        flow,
        settings,
        lambda state: "redirect hops" in state.holds.held() and state.redirect is not None,
    )
    if order:
        assert seen["slot" if first is FloodControl else "clocks"]
    else:
        assert (seen["slot"], seen["clocks"]) == (False, False)


TUNNEL_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [tunnel.pipeline.test]
    tls: passthrough
"""


@pytest.mark.parametrize("order", ORDERS)
def test_a_passthrough_tunnel_takes_its_destinations_slot(
    tmp_path: Path, dns_server: TestDnsServer, order: str
) -> None:
    """DestinationGuard -> FloodControl in ``http_connect``: unjudged, a tunnel is uncapped."""
    dns_server.add("tunnel.pipeline.test", "127.0.0.2")
    path = tmp_path / "policy.yaml"
    path.write_text(TUNNEL_POLICY)
    runtime = Runtime(load_policy(path), Resolver([dns_server.address]))
    bench = Bench(runtime, build_pipeline(runtime))
    swap = (DestinationGuard, FloodControl) if order else None
    chain = bench.chain(swap, Lifecycle, DestinationGuard, FloodControl, ExchangeEnd)
    flow = tflow.tflow()
    flow.request.method, flow.request.path = "CONNECT", ""
    flow.request.host, flow.request.port = "tunnel.pipeline.test", 443
    held: list[list[str]] = []
    lifecycle = bench.built.lifecycle
    run(
        chain,
        connected(flow),
        HttpConnectHook(flow),
        lambda: held.append(lifecycle.connection_holds(flow.client_conn.id).held()),
        server_hooks.ClientDisconnectedHook(flow.client_conn),
    )
    state = state_of(flow)
    assert state is not None and state.decision is not None and state.decision.allowed
    # Swapped: the tunnel carries traffic with no slot: no cap, no queue, no circuit.
    assert held == [[] if order else ["slot"]]


SIGNING_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [receiver.test]
    signing: {scheme: standard-webhooks, secrets: [env:HW_PIPELINE_WHSEC]}
"""
WHSEC = "whsec_" + base64.b64encode(b"a-key-for-the-pipeline-tests-32b").decode()


@pytest.mark.parametrize("order", ORDERS)
def test_a_request_is_signed_once_admitted_not_before_its_queue_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """FloodControl -> RequestSigning: a signature made before the wait is stale after it."""
    monkeypatch.setenv("HW_PIPELINE_WHSEC", WHSEC)
    path = tmp_path / "policy.yaml"
    path.write_text(SIGNING_POLICY)
    runtime = Runtime(load_policy(path), Resolver([("127.0.0.1", 9)]))
    bench = Bench(runtime, build_pipeline(runtime))
    swap = (FloodControl, RequestSigning) if order else None
    chain = bench.chain(swap, Lifecycle, FloodControl, RequestSigning, ExchangeEnd)
    settings = merge_rule(runtime.policy.defaults, runtime.policy.rules[0])
    config = settings.limits.config
    flow = tflow.tflow()
    signed_while_queued: list[bool] = []

    async def go() -> None:
        with addon_context(*chain, loadcore=False) as tctx:
            trigger = tctx.master.addons.trigger_event
            await trigger(connected(flow))
            await trigger(HttpRequestHeadersHook(flow))
            state = _judged(bench, flow, settings)
            key = limit_key(settings, "receiver.test", 80, (flow.client_conn.peername or ("-",))[0])
            taken = [await runtime.limiter.acquire(key, config) for _ in range(config.concurrency)]
            task = asyncio.create_task(trigger(HttpRequestHook(flow)))
            for _ in range(100):  # the hook reaches the queue at its first await
                if _row(bench, key)["queued"] == 1:
                    break
                await asyncio.sleep(0)
            else:
                pytest.fail("the request never queued for a slot")
            signed_while_queued.append("webhook-signature" in flow.request.headers)
            taken.pop().release()
            await task
            assert state.signed == "standard-webhooks"  # signed either way, but when?
            await trigger(HttpResponseHook(flow))
            for slot in taken:
                slot.release()

    asyncio.run(go())
    assert signed_while_queued == [bool(order)]


@pytest.mark.parametrize("order", ORDERS)
def test_the_in_flight_count_is_the_first_hold_so_the_last_given_back(
    bench: Bench, order: str
) -> None:
    """Lifecycle -> BodyCaps: holds go back last-taken first; the in-flight count must be the
    last, so a drain never sees "idle" while an exchange still holds a body's budget."""
    swap = (Lifecycle, BodyCaps) if order else None
    chain = bench.chain(swap, Lifecycle, BodyCaps, ExchangeEnd)
    flow = tflow.tflow(resp=True)
    flow.request.headers["Content-Length"] = "7"
    state = _judged(bench, flow)  # as the guard leaves it (the guard sits between the two)
    held: list[list[str]] = []
    run(
        chain,
        connected(flow),
        HttpRequestHeadersHook(flow),
        lambda: held.append(state.holds.held()),
        HttpRequestHook(flow),
        HttpResponseHook(flow),
    )
    assert held[0][0 if not order else -1] == "in-flight"
    assert "buffered body" in held[0]
    assert bench.built.lifecycle.inflight == 0
