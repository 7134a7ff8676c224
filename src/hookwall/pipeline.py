"""The addon chain: hookwall's addons and mitmproxy's, in the one order they must run in.

mitmproxy calls the handlers of a hook in the order the addons were added (awaiting each
async one before the next), so the list below is the order within every hook at once. Which
of its positions matter, and why, is ``ORDER``: one row per constraint, "in these hooks,
``first``'s handler must run before ``then``'s, because ...". ``order_violations`` checks a
chain against it; the master refuses to start with a chain that breaks a row, and
tests/unit/test_pipeline.py shows for the rows it can what goes wrong when one is broken.
``ORDER_FREE`` names the handlers whose place in their hook does not matter, and why.

The lifecycle of an exchange, which most rows protect:

- It begins in ``requestheaders`` (a request) or ``http_connect`` (a CONNECT), in
  ``Lifecycle``, the first handler that takes anything: the in-flight count is its first hold.
  Only ``InternalHops`` comes before it, to recognise hookwall's own hops and retries.
- A failed exchange is classified in ``Lifecycle``'s ``error`` handler, the first, so every
  later handler (flood control's circuit, retries, the log) reads the same verdict.
- It ends in ``response``, ``error``, ``http_connected`` or ``http_connect_error``, and is
  finished only after the last handler of that hook, ``ExchangeEnd``: only then has every
  addon finished with it (redirect hops and retries included), and everything it holds
  (``FlowState.holds``: in-flight count, slot, timers, buffered body) is given back. When
  mitmproxy drops a flow without any of these hooks, ``ExchangeEnd.client_disconnected`` (the
  last handler of that hook) ends it with its connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig

from hookwall.access.addon import AccessControl
from hookwall.bounds.addons.bodycaps import BodyCaps
from hookwall.bounds.addons.connections import ConnectionGuard
from hookwall.bounds.addons.deadlines import Deadlines
from hookwall.bounds.addons.upstreams import UpstreamPool
from hookwall.deliveries.addons.correlate import Correlation
from hookwall.deliveries.addons.exchangelog import ExchangeLog
from hookwall.deliveries.addons.store import DeliveryStore
from hookwall.deliveries.metrics import Metrics
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.destinations.addons.transparent import TransparentTls
from hookwall.destinations.addons.tunnels import PassthroughTunnels
from hookwall.flow.runtime import Runtime
from hookwall.flow.sweep import Sweeper
from hookwall.forwarding.addons.hopheaders import HopHeaders
from hookwall.forwarding.addons.lifecycle import ExchangeEnd, Lifecycle
from hookwall.forwarding.addons.safety import SafetyChecks
from hookwall.limits.addon import FloodControl
from hookwall.redirects.addon import InternalHops, Redirects
from hookwall.retries.addon import Retries
from hookwall.selfanswer.addon import SelfAnswer
from hookwall.signing.addon import RequestSigning


@dataclass(frozen=True, slots=True)
class Order:
    """In ``hooks``, ``first``'s handler must run before ``then``'s, because ``why``."""

    first: type
    then: type
    hooks: tuple[str, ...]
    why: str


@dataclass(frozen=True, slots=True)
class Free:
    """In ``hooks``, where ``addon``'s handler runs does not matter, because ``why``."""

    addon: type
    hooks: tuple[str, ...]
    why: str


_END = (
    "the exchange is finished only after every other handler of the hook that ends it "
    "(response, error, http_connected, http_connect_error; client_disconnected for what is "
    "still open on a connection that is gone): ExchangeEnd gives back all it holds (slot, "
    "timers, in-flight count), so a handler after it would act on an exchange that is over "
    "(a verdict lost, a hold taken and never given back, a drain that stops waiting too early)"
)

ORDER: tuple[Order, ...] = (
    # -- the beginning: requestheaders / http_connect ------------------------------------------
    Order(InternalHops, Lifecycle, ("requestheaders",),
          "InternalHops puts a hop's own state (the delivery's request id, hop, sender) on the "
          "flow; the exchange must begin on that state, or its in-flight hold is on a state "
          "that is replaced and never given back (a drain waits forever)"),
    Order(InternalHops, AccessControl, ("requestheaders", "http_connect"),
          "a hop of hookwall's own keeps the sender of its delivery and carries no "
          "credentials; an outsider on the internal listener is refused before anything else"),
    Order(InternalHops, HopHeaders, ("requestheaders",),
          "InternalHops reads X-Hookwall-Internal, which HopHeaders strips"),
    Order(Lifecycle, Correlation, ("requestheaders",),
          "Correlation records replay_of on the state the exchange began with"),
    Order(Lifecycle, DestinationGuard, ("requestheaders", "http_connect"),
          "the exchange is in flight before the guard awaits DNS: a drain waits for it and "
          "the upstream pool never closes the connection it is about to reuse"),
    Order(Lifecycle, BodyCaps, ("requestheaders",),
          "the in-flight count is the first hold taken, so it is the last given back"),
    Order(ConnectionGuard, DestinationGuard, ("requestheaders", "http_connect"),
          "the head deadline stops once the head is whole, before the guard awaits DNS; "
          "otherwise a slow lookup is cut as a slow sender"),
    Order(AccessControl, DestinationGuard, ("requestheaders", "http_connect"),
          "which rule applies depends on the sender AccessControl authenticates"),
    Order(AccessControl, SelfAnswer, ("requestheaders", "http_connect"),
          "access control applies to hookwall.invalid too: without valid credentials a sender "
          "gets the usual 407, not an answer saying who it is (the 407 is what doctor checks)"),
    Order(SelfAnswer, DestinationGuard, ("requestheaders", "http_connect"),
          "the guard skips what SelfAnswer answers (state.self_answered): hookwall.invalid is "
          "never judged, resolved or connected to, and its tunnel is SelfAnswer's"),
    Order(AccessControl, HopHeaders, ("requestheaders",),
          "AccessControl reads Proxy-Authorization, which HopHeaders strips"),
    Order(Correlation, HopHeaders, ("requestheaders",),
          "Correlation reads X-Hookwall-Replay-Of, which HopHeaders strips"),
    Order(DestinationGuard, BodyCaps, ("requestheaders",),
          "the body caps are the judged destination's (state.decision, set by the guard)"),
    Order(DestinationGuard, FloodControl, ("http_connect",),
          "a passthrough tunnel's slot is its judged destination's (state.decision)"),
    # -- admission: request --------------------------------------------------------------------
    Order(InternalHops, FloodControl, ("request",),
          "a signed delivery's hop to a target without signing is refused before it waits for "
          "a slot"),
    Order(BodyCaps, FloodControl, ("request",),
          "a body too big never waits for a slot, and the body deadline stops (the body is "
          "whole) before the wait, so a queued request is not answered 408"),
    Order(FloodControl, RequestSigning, ("request",),
          "the signature's timestamp is taken once the request is admitted, not before a "
          "queue wait that would make it stale"),
    Order(FloodControl, Deadlines, ("request", "http_connect"),
          "the receiver's clocks start when the request (or passthrough tunnel) is admitted: "
          "time in the queue is not the receiver's, and a refused one starts none"),
    # -- TLS: mitmproxy's TlsConfig acts on what the guard decided --------------------------------
    Order(TransparentTls, DestinationGuard, ("tls_clienthello",),
          "a transparent listener's TLS connection is judged (as the CONNECT its sender would "
          "have sent) before the guard reads that verdict to pass a tunnel through untouched; "
          "after it, a passthrough rule's bytes would go to the address the sender dialled"),
    Order(DestinationGuard, tlsconfig.TlsConfig, ("tls_start_server",),
          "the guard sets the checked name as SNI before mitmproxy builds the TLS connection "
          "and its verification from it (mitmproxy fills an unset SNI with the client's)"),
    # -- the receiver's verdict: response / error ----------------------------------------------
    Order(Lifecycle, FloodControl, ("error",),
          "Lifecycle classifies the failure first; flood control's circuit reads that "
          "verdict (an unclassified connect failure would count as neutral)"),
    Order(FloodControl, Redirects, ("response",),
          "the slot is given back before a redirect hop, which may need a slot of the same "
          "destination"),
    Order(FloodControl, Retries, ("response", "error"),
          "the slot is given back with the receiver's verdict before the retries, which need "
          "a slot of the same destination"),
    Order(Deadlines, Redirects, ("response",),
          "the first request's clocks stop before the hops are awaited; otherwise its "
          "deadline cuts the delivery while its hops are answered"),
    Order(Deadlines, Retries, ("response", "error"),
          "the first attempt's clocks stop before the retries are awaited"),
    Order(Redirects, ExchangeLog, ("response",),
          "the exchange event records what Redirects did with a 3xx (followed, relayed, "
          "refused) and comes after its hops' events"),
    Order(ExchangeLog, Retries, ("response", "error"),
          "each attempt is its own exchange event, logged in order: this attempt's before "
          "the retries send the next ones"),
    # -- the end: ExchangeEnd is the last handler of every hook that ends an exchange ----------
    Order(Lifecycle, ExchangeEnd, ("error",), _END),
    Order(ConnectionGuard, ExchangeEnd, ("http_connected", "client_disconnected"), _END),
    Order(DestinationGuard, ExchangeEnd, ("client_disconnected",), _END),
    Order(PassthroughTunnels, ExchangeEnd, ("http_connected", "client_disconnected"), _END),
    Order(Correlation, ExchangeEnd, ("response",), _END),
    Order(BodyCaps, ExchangeEnd, ("response",), _END),
    Order(FloodControl, ExchangeEnd, ("response", "error", "client_disconnected"), _END),
    Order(Deadlines, ExchangeEnd, ("response", "error"), _END),
    Order(Redirects, ExchangeEnd, ("response",), _END),
    Order(ExchangeLog, ExchangeEnd,
          ("response", "error", "http_connected", "http_connect_error", "client_disconnected"),
          _END),
    Order(Retries, ExchangeEnd, ("response", "error"), _END),
    Order(UpstreamPool, ExchangeEnd, ("client_disconnected",), _END),
)  # fmt: skip

ORDER_FREE: tuple[Free, ...] = (
    Free(UpstreamPool, ("requestheaders",),
         "it only stops counting the sender's receiver connections as idle; closing one "
         "checks Lifecycle's in-flight count, which began first"),
    Free(HopHeaders, ("responseheaders",),
         "strips the receiver's X-Hookwall-* headers; BodyCaps and Deadlines read only the "
         "length and their own timers"),
    Free(BodyCaps, ("responseheaders",), "reads only Content-Length; a kill ends the flow"),
    Free(Deadlines, ("responseheaders",), "stops its own headers clock only"),
    Free(Lifecycle, ("client_connected", "running", "done"),
         "per connection: its holds exist before any exchange on it; running/done: its own "
         "internal listener"),
    Free(ConnectionGuard, ("client_connected", "done"),
         "connection caps and its own sweeper, independent of every other addon"),
    Free(PassthroughTunnels, ("done",), "cancels its own re-judging tasks"),
    Free(DeliveryStore, ("running", "done"),
         "starts and stops its own writer; fed by ExchangeLog's callback, not by a hook"),
)  # fmt: skip


@dataclass(slots=True)
class Pipeline:
    """The ordered addons, and the parts other code (reload, drain, admin) talks to."""

    addons: list[object]
    guard: DestinationGuard
    lifecycle: Lifecycle
    connections: ConnectionGuard
    passthrough: PassthroughTunnels
    exchange_log: ExchangeLog
    store: DeliveryStore | None


def build_pipeline(
    runtime: Runtime, data_dir: Path | None = None, metrics: Metrics | None = None
) -> Pipeline:
    """Build every addon, wire the callbacks between them, and list them in ``ORDER``."""
    guard = DestinationGuard(runtime)
    lifecycle = Lifecycle(runtime, guard.tunnels)
    passthrough = PassthroughTunnels(runtime, guard.tunnels)  # after reloads
    sweeper = Sweeper()  # connection and body deadlines, checked four times a second
    connections = ConnectionGuard(runtime, lifecycle, sweeper)
    # The delivery store (hookwall logs) lives in the data dir; fed by ExchangeLog.
    store = DeliveryStore(runtime, data_dir) if data_dir is not None else None
    exchange_log = ExchangeLog(
        guard.tunnels,
        lifecycle.connection_holds,
        store.record if store else None,
        metrics.observe_exchange if metrics else None,
    )
    lifecycle.on_abandoned.append(exchange_log.abandoned)
    tls = tlsconfig.TlsConfig()  # its certificate store holds the CA SelfAnswer names
    addons: list[object] = [
        core.Core(),
        SafetyChecks(),
        InternalHops(runtime),
        lifecycle,
        connections,
        AccessControl(runtime, guard.tunnels),
        SelfAnswer(runtime, guard.tunnels, tls),  # hookwall.invalid: answered, never judged
        TransparentTls(guard.tunnels),
        guard,
        passthrough,
        Correlation(),
        HopHeaders(),
        BodyCaps(runtime, sweeper),
        FloodControl(runtime.limiter, lifecycle),
        RequestSigning(),
        Deadlines(lifecycle),
        Redirects(runtime),
        exchange_log,
        *([store] if store else []),
        Retries(runtime),
        UpstreamPool(runtime, lifecycle, guard.tunnels),
        lifecycle.end,
        proxyserver.Proxyserver(),  # type: ignore[no-untyped-call]  # mitmproxy, unannotated
        next_layer.NextLayer(),
        tls,
    ]
    return Pipeline(addons, guard, lifecycle, connections, passthrough, exchange_log, store)


def order_violations(chain: Sequence[object]) -> list[str]:
    """Every ``ORDER`` row the chain (addon instances or their types) breaks, said as a fix.

    A row whose two addons are not both in the chain (no delivery store) is not broken."""
    position: dict[type, int] = {}
    for index, addon in enumerate(chain):
        position.setdefault(addon if isinstance(addon, type) else type(addon), index)
    broken = []
    for row in ORDER:
        first, then = position.get(row.first), position.get(row.then)
        if first is not None and then is not None and first > then:
            broken.append(describe(row))
    return broken


def describe(row: Order) -> str:
    """One broken row, in the words of its fix."""
    hooks = "/".join(row.hooks)
    return (
        f"{row.first.__name__} must come before {row.then.__name__} in the addon chain "
        f"({hooks}): {row.why}"
    )
