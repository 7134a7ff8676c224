"""Per-flow and per-tunnel state our addons share, kept in ``flow.metadata``.

Each flow holds the policy snapshot it started with, so a reload never changes the rules
under a request in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mitmproxy import http

from hookwall.core import ids
from hookwall.core.denials import Denial
from hookwall.destinations.decide import Decision
from hookwall.flow.holds import Holds
from hookwall.policy import Policy

METADATA_KEY = "hookwall"


def new_request_id() -> str:
    """Short, unique, log-friendly and time-ordered (``hookwall.core.ids``)."""
    return ids.request_id()


@dataclass(slots=True)
class FlowState:
    policy: Policy | None  # None only for flows the guard never judged (unparseable requests)
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.time)
    decision: Decision | None = None
    denial: Denial | None = None
    tunnel: TunnelState | None = None  # set for requests inside a CONNECT tunnel
    upgraded: bool = False
    signed: str | None = None  # the scheme that signed ("sender" when the sender's was kept)
    key_ids: tuple[str, ...] = ()
    webhook_id: str | None = None
    sender: str | None = None  # the authenticated sender (access control), if any
    attempted_sender: str | None = None  # a configured sender name that failed to authenticate
    would_deny: list[tuple[str, str]] = field(default_factory=list)  # report-only (reason, msg)
    queue_ms: float | None = None
    limit_key: str | None = None
    attempt: int = 1
    hop: int = 0  # 0: the sender's request; n: the n-th redirect hop hookwall followed
    internal: bool = False  # sent by hookwall itself through its own listener (a hop)
    chain_signed: bool = False  # a hop of a signed delivery: its target must sign too
    redirect: dict[str, object] | None = None  # on a 3xx: location, action, hops
    received_status: int | None = None  # the receiver's own status, when we replaced it
    original_url: str = ""  # the URL the sender asked for (name, not pinned IP; no userinfo)
    replay_of: str | None = None  # request id this exchange replays (`hookwall replay`)
    error: str | None = None
    logged: bool = False
    # What this exchange has taken (in-flight count, slot, timers): given back exactly once,
    # after its last handler or when its connection ends (Lifecycle).
    holds: Holds = field(default_factory=Holds)


@dataclass(slots=True)
class TunnelState:
    """What was decided for a CONNECT: the requests inside are bound to this host and IP."""

    decision: Decision
    policy: Policy | None  # None only for flows the guard never judged (unparseable requests)
    request_id: str
    sender: str | None = None  # verified on the CONNECT: holds for every request inside
    would_deny: tuple[tuple[str, str], ...] = ()  # report-only access verdicts of the CONNECT

    @property
    def passthrough(self) -> bool:
        """Its bytes are tunnelled untouched (``tls: passthrough``): no request is ever seen."""
        settings = self.decision.settings
        return settings is not None and settings.tls == "passthrough"


def start_state(flow: http.HTTPFlow, policy: Policy, tunnel: TunnelState | None) -> FlowState:
    """The flow's state, created on first use with the policy snapshot it will keep."""
    state = state_of(flow)
    if state is None:
        state = FlowState(policy=tunnel.policy if tunnel else policy, tunnel=tunnel)
        flow.metadata[METADATA_KEY] = state
    return state


def state_of(flow: http.HTTPFlow) -> FlowState | None:
    state = flow.metadata.get(METADATA_KEY)
    return state if isinstance(state, FlowState) else None
