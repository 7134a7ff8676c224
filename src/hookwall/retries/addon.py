"""Proxy-side retries for a destination (``retries:`` in the policy; off by default).

A retry is sent like a redirect hop: a brand-new request through hookwall's own listener,
marked for ``InternalHops`` with the delivery's request id and ``attempt=n``, so every attempt
is judged, queued, re-signed (fresh timestamp) and logged by the normal pipeline as its own
exchange event. The sender gets the last attempt's answer.

Covered: a receiver's retriable status (``on: [502, 503, 504, ...]``), answered through the
``response`` hook, and failures that end the flow in mitmproxy's ``error`` hook (connect
refused/reset = ``upstream-error``, ``connect-timeout``, ``response-timeout``): there the last
attempt's answer is written by ``errorpages`` in place of the denial. Waits are exponential
with full jitter, never shorter than the receiver's ``Retry-After`` (clamped by
``limits.retry_after_max``), and the whole loop ends by the request's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time

from mitmproxy import http

from hookwall.flow.holds import stopped_if_released
from hookwall.flow.hopclient import HopResponse, send_through_proxy
from hookwall.flow.respond import relay, relay_when_failed
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, state_of
from hookwall.forwarding.addons.lifecycle import settle_error
from hookwall.policy.model import Settings
from hookwall.redirects.addon import internal_request_headers, own_listener
from hookwall.retries.plan import backoff, retriable
from hookwall.retries.retryafter import parse_retry_after

logger = logging.getLogger(__name__)


class Retries:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def response(self, flow: http.HTTPFlow) -> None:
        state, settings = self._applies(flow)
        if state is None or settings is None or flow.response is None:
            return
        if state.redirect is not None:
            return  # a followed/denied redirect chain is final
        status = flow.response.status_code
        reason = state.denial.reason if state.denial is not None else None
        if not retriable(status, reason, settings.retries.on):
            return
        with stopped_if_released(state.holds, "retries"):  # nobody waits for a departed sender
            final = await self._retry(
                flow, state, settings, flow.response.headers.get("retry-after")
            )
        if final is not None:
            relay(flow, state, final)  # the sender gets the last attempt's answer

    async def error(self, flow: http.HTTPFlow) -> None:
        state, settings = self._applies(flow)
        if state is None or settings is None or flow.response is not None:
            return
        settle_error(flow)  # the one classification (already done by Lifecycle, first)
        denial = state.denial
        assert denial is not None
        if not retriable(denial.status, denial.reason, settings.retries.on):
            return
        with stopped_if_released(state.holds, "retries"):
            final = await self._retry(flow, state, settings, None)
        if final is not None:
            relay_when_failed(flow, final)

    @staticmethod
    def _applies(flow: http.HTTPFlow) -> tuple[FlowState | None, Settings | None]:
        state = state_of(flow)
        if state is None or state.internal or state.decision is None:
            return None, None
        settings = state.decision.settings
        if settings is None or settings.retries.attempts <= 0:
            return None, None
        return state, settings

    async def _retry(
        self, flow: http.HTTPFlow, state: FlowState, settings: Settings, retry_after: str | None
    ) -> HopResponse | None:
        policy = settings.retries
        timeouts, limits = settings.timeouts, settings.limits.config
        # The request's deadline: as long as one request may queue, connect and be answered.
        deadline = state.started + timeouts.connect + timeouts.response + limits.queue_timeout
        final: HopResponse | None = None
        for attempt in range(2, policy.attempts + 2):
            wait = backoff(attempt - 1, policy.backoff, policy.max_backoff)
            asked = parse_retry_after(retry_after)
            if asked is not None:
                wait = max(wait, min(asked, limits.retry_after_max))
            remaining = deadline - time.time() - wait
            if remaining <= 0:
                break
            await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(remaining):
                    final = await self._send(flow, state, settings, attempt)
            except (OSError, TimeoutError, ValueError) as exc:
                logger.warning("retry attempt %d of %s failed: %r", attempt, state.request_id, exc)
                break
            reason = final.refusal
            if not retriable(final.status, reason, policy.on):
                break
            retry_after = final.header("Retry-After")
        return final

    async def _send(
        self, flow: http.HTTPFlow, state: FlowState, settings: Settings, attempt: int
    ) -> HopResponse:
        tag = f"attempt={attempt}"
        headers = internal_request_headers(flow, state, settings, self.runtime, tag)
        host, port = own_listener(self.runtime)
        return await send_through_proxy(
            (host, port),
            flow.request.method,
            state.original_url or flow.request.pretty_url,
            headers,
            flow.request.raw_content or b"",
            max_body=settings.max_response_body,
        )
