"""BodyCaps: per-destination bounds on bodies: their size, and how long a request body may
take to arrive.

- mitmproxy has one ``body_size_limit`` for both directions; we set it to the largest cap of
  the policy (so nothing larger is ever buffered) and apply each destination's own caps here:
  on ``Content-Length`` up front, and on the bytes actually read.
- ``timeouts.body``: from the request head to the end of its body. A sender that trickles its
  body is answered ``408 request-timeout`` (on plain HTTP; inside TLS the connection closes)
  and holds no slot meanwhile: flood control admits a request only once its body is whole.
- ``proxy.max_buffered_bodies``: the request bodies of every exchange in flight together
  (``bounds/budget.py``); a request that does not fit is answered ``503 proxy-busy`` before
  its body is read.

The sizes and the refusals are ``bounds/bodies.py``'s, read from the request's ``Exchange``.
"""

from __future__ import annotations

from functools import partial

from mitmproxy import http

from hookwall.bounds.bodies import (
    content_length,
    expected_size,
    request_too_large,
    response_too_large,
)
from hookwall.bounds.budget import ByteBudget
from hookwall.config.units import format_size
from hookwall.core.denials import Denial, Reason
from hookwall.flow.exchange import exchange_of
from hookwall.flow.respond import deny, deny_when_failed, refuse_and_close
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, state_of
from hookwall.flow.sweep import Sweeper


def _too_slow(flow: http.HTTPFlow, seconds: float) -> None:
    """The body did not arrive in time: answer 408 and close the sender's connection."""
    state = state_of(flow)
    if state is None or flow.request.timestamp_end is not None or not flow.live:
        return
    message = f"the request body did not arrive complete within {seconds:g}s"
    refuse_and_close(flow, state, Denial(Reason.REQUEST_TIMEOUT, message))


def _limits(flow: http.HTTPFlow) -> tuple[FlowState, int, int] | None:
    state = state_of(flow)
    if state is None or state.denial is not None or state.decision is None:
        return None
    settings = state.decision.settings
    if settings is None:
        return None
    return state, settings.max_request_body, settings.max_response_body


class BodyCaps:
    def __init__(self, runtime: Runtime, sweeper: Sweeper) -> None:
        self.runtime = runtime
        self.budget = ByteBudget()
        self.sweeper = sweeper  # the body deadline, without a timer per request

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        found = _limits(flow)
        if found is None:
            return
        state, cap, _ = found
        request = exchange_of(flow, state)
        declared = content_length(request.header("content-length"))
        if declared is not None and declared > cap:
            deny(flow, state, request_too_large(declared, cap))
            return
        size = expected_size(request, cap)
        if size == 0:
            return  # no body to wait for or to hold in memory
        if not self._reserve(flow, state, size):
            return
        assert state.decision is not None and state.decision.settings is not None
        seconds = state.decision.settings.timeouts.body
        key = ("body", flow.id)
        self.sweeper.set(key, seconds, partial(_too_slow, flow, seconds))
        state.body_deadline = state.holds.add(
            "deadline: request body", partial(self.sweeper.clear, key)
        )

    def _reserve(self, flow: http.HTTPFlow, state: FlowState, size: int) -> bool:
        """Room for this body among all the bodies in memory, or a 503 now."""
        limit = self.runtime.policy.proxy.max_buffered_bodies
        if not self.budget.reserve(size, limit):
            message = (
                f"hookwall holds {format_size(self.budget.in_use)} of request bodies, its limit "
                f"(proxy.max_buffered_bodies: {format_size(limit)}); retry shortly"
            )
            deny(flow, state, Denial(Reason.PROXY_BUSY, message, retry_after=1))
            return False
        state.holds.add("buffered body", lambda: self.budget.give_back(size))
        return True

    def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is not None and state.body_deadline is not None:
            state.body_deadline.release()  # the body is whole, before any wait for a slot
            state.body_deadline = None
        found = _limits(flow)
        size = len(flow.request.raw_content or b"")
        if found and size > found[1]:
            deny(flow, found[0], request_too_large(size, found[1]))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        found = _limits(flow)
        assert flow.response is not None
        declared = content_length(flow.response.headers.get("content-length"))
        if found and declared is not None and declared > found[2]:
            # Replacing the response here would corrupt framing: kill the flow and let the
            # error page carry our answer.
            deny_when_failed(flow, found[0], response_too_large(declared, found[2]))
            flow.kill()

    def response(self, flow: http.HTTPFlow) -> None:
        found = _limits(flow)
        assert flow.response is not None
        size = len(flow.response.raw_content or b"")
        if found and size > found[2]:
            deny(flow, found[0], response_too_large(size, found[2]))
