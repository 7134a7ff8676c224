"""FloodControl: per-destination concurrency caps with a FIFO queue, rate limits, receiver
backpressure and circuit breaking, so one slow or flooded receiver never hurts the rest.

- A request takes a slot in ``request``, once its body has arrived whole: a sender that
  trickles its body holds nothing of the destination's (its deadline is ``timeouts.body``).
- A ``tls: passthrough`` tunnel takes its slot on the CONNECT, before any upstream connection
  exists, and holds it for the tunnel's life: the cap, queue, rate and circuit apply to it.
- The slot is a hold of the exchange (``FlowState.holds``) or of the tunnel's connection, so it
  is given back exactly once whatever ends them; the ``response``/``error`` handlers give it
  back earlier with the receiver's verdict (5xx, connect errors, timeouts and TLS failures open
  the circuit; 429/503 with ``Retry-After`` pause the destination for every sender), before a
  redirect hop to the same destination needs a slot of its own.
- A request waiting in the queue whose sender goes away stops waiting.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from mitmproxy import connection, http
from mitmproxy.proxy import server_hooks

from hookwall.core.denials import Denial, Reason
from hookwall.flow.holds import Hold, Holds, stopped_if_released
from hookwall.flow.respond import deny
from hookwall.flow.state import FlowState, state_of
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.limits import Outcome, Rejected, parse_retry_after
from hookwall.limits.backend import Limiter, SlotHandle
from hookwall.policy import Settings

# Reasons that mean the receiver (or the way to it) failed: they count for the circuit.
UPSTREAM_FAILURES = frozenset(
    {Reason.UPSTREAM_ERROR, Reason.CONNECT_TIMEOUT, Reason.RESPONSE_TIMEOUT, Reason.TLS_FAILED}
)


def limit_key(settings: Settings, host: str, port: int, sender: str | None) -> str:
    """The budget a request draws from: its host and port (or host, with ``key: host``), per
    sender if configured. The circuit breaker keeps its state per budget too."""
    limits = settings.limits
    key = f"{host}:{port}" if limits.key == "host-port" else host
    return f"{key}|{sender or '-'}" if limits.per_sender else key


class _Admission:
    """A slot and the verdict to report with it when it is given back (``FlowState.slot``)."""

    __slots__ = ("hold", "key", "limiter", "outcome", "retry_after", "slot", "status")

    def __init__(self, limiter: Limiter, key: str, slot: SlotHandle) -> None:
        self.limiter, self.key, self.slot = limiter, key, slot
        self.outcome: Outcome = "neutral"  # what an end without a verdict reports
        self.status: int | None = None
        self.retry_after: float | None = None
        self.hold: Hold | None = None  # the holder's: giving it back calls give_back once

    def give_back(self) -> None:
        try:
            self.limiter.report(
                self.key, self.outcome, retry_after=self.retry_after, status=self.status
            )
        finally:
            self.slot.release()

    def verdict(self, outcome: Outcome, status: int | None, retry_after: float | None) -> None:
        self.outcome, self.status, self.retry_after = outcome, status, retry_after
        if self.hold is not None:
            self.hold.release()


class FloodControl:
    def __init__(self, limiter: Limiter, lifecycle: Lifecycle) -> None:
        self.limiter = limiter
        self.lifecycle = lifecycle
        # A passthrough tunnel's admission, for as long as its client connection lives.
        self._tunnels: WeakKeyDictionary[connection.Client, _Admission] = WeakKeyDictionary()

    # -- admission ------------------------------------------------------------------------------
    async def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        settings = _settings(state)
        if state is None or settings is None or state.decision is None:
            return
        await self._admit(flow, state, settings, state.holds)

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        settings = _settings(state)
        if state is None or settings is None or settings.tls != "passthrough":
            return  # an intercepted tunnel's requests are admitted one by one
        holds = self.lifecycle.connection_holds(flow.client_conn.id)
        admission = await self._admit(flow, state, settings, holds)
        if admission is not None and not holds.closed:  # else: given back already
            self._tunnels[flow.client_conn] = admission

    async def _admit(
        self, flow: http.HTTPFlow, state: FlowState, settings: Settings, holder: Holds
    ) -> _Admission | None:
        assert state.decision is not None
        sender = state.sender or (flow.client_conn.peername or ("-",))[0]
        key = limit_key(settings, state.decision.host, state.decision.port, sender)
        state.limit_key = key  # also for refusals: metrics count them per destination
        try:
            with stopped_if_released(state.holds, "queue wait"):
                slot = await self.limiter.acquire(key, settings.limits.config)
        except Rejected as exc:
            deny(flow, state, Denial(exc.reason, exc.message, retry_after=exc.retry_after))
            return None
        admission = _Admission(self.limiter, key, slot)
        state.queue_ms = round(slot.queued_ms, 3)
        admission.hold = holder.add("slot", admission.give_back)
        if admission.hold.held and holder is state.holds:
            state.slot = admission  # the verdict comes with the response
        return admission

    # -- verdicts -------------------------------------------------------------------------------
    def response(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None:
            return
        response = flow.response
        if state.denial is not None or response is None:
            _finish(state, _outcome_of_denial(state))
            return
        status = response.status_code
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        outcome: Outcome = "failure" if status >= 500 else "success"
        _finish(state, outcome, status=status, retry_after=retry_after)

    def error(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)  # Lifecycle has classified the failure
        if state is not None:
            _finish(state, _outcome_of_denial(state))

    # -- passthrough tunnels: the upstream connection's fate is the tunnel's verdict ----------
    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        admission = self._tunnels.get(data.client)
        if admission is not None:
            admission.outcome = "success"

    def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        admission = self._tunnels.get(data.client)
        if admission is not None:
            admission.outcome = "failure"

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client, None)  # the slot itself is a connection hold


def _finish(
    state: FlowState,
    outcome: Outcome,
    *,
    status: int | None = None,
    retry_after: float | None = None,
) -> None:
    """The receiver's verdict on an admitted exchange: its slot goes back with it, once."""
    slot, state.slot = state.slot, None
    if slot is not None:
        slot.verdict(outcome, status, retry_after)


def _settings(state: FlowState | None) -> Settings | None:
    if state is None or state.denial is not None or state.decision is None:
        return None
    return state.decision.settings


def _outcome_of_denial(state: FlowState) -> Outcome:
    if state.denial is not None and state.denial.reason in UPSTREAM_FAILURES:
        return "failure"
    return "neutral"  # our own refusal, or the sender went away
