"""Turn a `Denial` into the response the sender sees (status, reason header, JSON body)."""

from __future__ import annotations

from mitmproxy import http

from hookwall.denials import Denial
from hookwall.proxy.state import FlowState


def deny(flow: http.HTTPFlow, state: FlowState, denial: Denial) -> None:
    """Answer the flow ourselves; nothing is sent upstream."""
    state.denial = denial
    flow.response = http.Response.make(
        denial.status, denial.body(state.request_id), denial.headers(state.request_id)
    )
