"""FloodControl: per-destination concurrency caps with a FIFO queue, rate limits, receiver
backpressure and circuit breaking, so one slow or flooded receiver never hurts the rest.

A request takes a slot in ``requestheaders`` (before its body is read: a queued request
costs the proxy no body buffer) and gives it back when the exchange ends, whatever the end:
response, error, or a refusal of ours. The receiver's answer is reported back (5xx and
connect errors open the circuit; 429/503 with ``Retry-After`` pause the destination for every
sender).
"""

from __future__ import annotations

from mitmproxy import http

from hookwall.denials import Denial
from hookwall.limits import Outcome, Rejected, parse_retry_after
from hookwall.limits.backend import Limiter, SlotHandle
from hookwall.policy import Settings
from hookwall.proxy.respond import deny
from hookwall.proxy.state import FlowState, state_of

SLOT_KEY = "hookwall.slot"
# Reasons that mean the receiver (or the way to it) failed: they count for the circuit.
UPSTREAM_FAILURES = frozenset(
    {"upstream-error", "connect-timeout", "response-timeout", "tls-failed"}
)


def limit_key(settings: Settings, host: str, port: int, sender: str | None) -> str:
    """The budget a request draws from: its host (or host:port), per sender if configured."""
    limits = settings.limits
    key = f"{host}:{port}" if limits.key == "host-port" else host
    return f"{key}|{sender or '-'}" if limits.per_sender else key


class FloodControl:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or state.denial is not None or state.decision is None:
            return
        settings = state.decision.settings
        if settings is None:
            return
        sender = state.sender or (flow.client_conn.peername or ("-",))[0]
        key = limit_key(settings, state.decision.host, state.decision.port, sender)
        state.limit_key = key  # also for refusals: metrics count them per destination
        try:
            slot = await self.limiter.acquire(key, settings.limits.config)
        except Rejected as exc:
            deny(flow, state, Denial(exc.reason, exc.message, retry_after=exc.retry_after))
            return
        state.queue_ms = round(slot.queued_ms, 3)
        flow.metadata[SLOT_KEY] = slot

    def response(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None:
            return
        response = flow.response
        if state.denial is not None or response is None:
            self._finish(flow, state, self._outcome_of_denial(state))
            return
        status = response.status_code
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        outcome: Outcome = "failure" if status >= 500 else "success"
        self._finish(flow, state, outcome, status=status, retry_after=retry_after)

    def error(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is not None:
            self._finish(flow, state, self._outcome_of_denial(state))

    @staticmethod
    def _outcome_of_denial(state: FlowState) -> Outcome:
        if state.denial is not None and state.denial.reason in UPSTREAM_FAILURES:
            return "failure"
        return "neutral"  # our own refusal, or the client went away

    def _finish(
        self,
        flow: http.HTTPFlow,
        state: FlowState,
        outcome: Outcome,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        slot: SlotHandle | None = flow.metadata.pop(SLOT_KEY, None)
        if slot is None:
            return
        try:
            if state.limit_key is not None:
                self.limiter.report(
                    state.limit_key, outcome, retry_after=retry_after, status=status
                )
        finally:
            slot.release()
