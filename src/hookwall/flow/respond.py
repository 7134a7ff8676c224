"""Turn a `Denial` into the response the sender sees (status, reason header, JSON body)."""

from __future__ import annotations

from mitmproxy import http

from hookwall.core.denials import Denial
from hookwall.flow.state import FlowState

# The response hookwall wrote itself (flow metadata): only it may carry X-Hookwall-* headers.
OWN_RESPONSE = "hookwall.own_response"


def deny(flow: http.HTTPFlow, state: FlowState, denial: Denial) -> None:
    """Answer the flow ourselves; nothing is sent upstream."""
    state.denial = denial
    flow.response = http.Response.make(
        denial.status, denial.body(state.request_id), denial.headers(state.request_id)
    )
    flow.metadata[OWN_RESPONSE] = flow.response


def is_own_response(flow: http.HTTPFlow) -> bool:
    """Whether the flow's response is a refusal hookwall wrote, not a receiver's answer."""
    return flow.response is not None and flow.metadata.get(OWN_RESPONSE) is flow.response
