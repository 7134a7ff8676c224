"""Per-flow and per-tunnel state our addons share: ``FlowState`` is the one ``flow.metadata``
key hookwall uses.

Each field has one writer, named next to it; every other addon only reads it. Where several
addons have a say (whether the connection closes after this exchange, the denial), they call
the one writer: a method here, or ``flow/respond.py``. Each flow holds the policy snapshot it
started with, so a reload never changes the rules under a request in flight. State that lives
as long as a connection (a tunnel's verdict, a pending error page) is kept by connection, not
here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mitmproxy import http

from hookwall.core import ids
from hookwall.core.denials import Denial, Reason
from hookwall.deliveries.event import RedirectRecord
from hookwall.destinations.decide import Decision
from hookwall.flow.holds import Hold, Holds
from hookwall.limits import Outcome
from hookwall.policy import Policy

METADATA_KEY = "hookwall"

# Why the sender's connection closes after an exchange (``FlowState.close_after``):
# it asked to (HopHeaders), it has no valid credentials (AccessControl), its tunnel
# cannot go on under a reloaded policy, or its tunnel's destination was refused and the
# refusal has been answered inside it (DestinationGuard).
CloseWhy = Literal["sender-asked", "no-credentials", "policy-reloaded", "destination-refused"]


def new_request_id() -> str:
    """Short, unique, log-friendly and time-ordered (``hookwall.core.ids``)."""
    return ids.request_id()


class Slot(Protocol):
    """A destination slot an exchange holds (FloodControl's admission, ``limits/addon.py``)."""

    def verdict(self, outcome: Outcome, status: int | None, retry_after: float | None) -> None:
        """The receiver's verdict: recorded, and the slot given back with it."""


@dataclass(slots=True)
class ResponseClocks:
    """The receiver's deadlines for one request (Deadlines): its response headers, and the
    whole response. Each stops once; both stop when the exchange ends."""

    headers: asyncio.TimerHandle | None
    whole: asyncio.TimerHandle | None

    def stop_headers(self) -> None:
        if self.headers is not None:
            self.headers.cancel()
            self.headers = None

    def stop(self) -> None:
        self.stop_headers()
        if self.whole is not None:
            self.whole.cancel()
            self.whole = None


@dataclass(slots=True)
class FlowState:
    """One exchange's state, from its first hook to its end; the fields are grouped by writer."""

    # -- set when the state is made (``start_state``; ``InternalHops`` for hookwall's hops) --------
    policy: Policy | None  # None only for flows the guard never judged (unparseable requests);
    # DestinationGuard replaces it when a tunnel's request follows a reloaded policy
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.time)
    tunnel: TunnelState | None = None  # set for requests inside a CONNECT tunnel
    attempt: int = 1
    hop: int = 0  # 0: the sender's request; n: the n-th redirect hop hookwall followed
    internal: bool = False  # sent by hookwall itself through its own listener (a hop)
    chain_signed: bool = False  # a hop of a signed delivery: its target must sign too
    # What this exchange has taken (in-flight count, slot, timers): given back exactly once,
    # after its last handler or when its connection ends (Lifecycle). Every taker adds to it.
    holds: Holds = field(default_factory=Holds)

    # -- AccessControl (InternalHops for a hop: the delivery's sender) -----------------------------
    sender: str | None = None  # the authenticated sender, if any
    attempted_sender: str | None = None  # a configured sender name that failed to authenticate
    would_deny: list[tuple[Reason, str]] = field(default_factory=list)  # report-only verdicts

    # -- SelfAnswer (hookwall.invalid): the guard never judges what hookwall answers itself --------
    self_answered: bool = False

    # -- DestinationGuard --------------------------------------------------------------------------
    decision: Decision | None = None
    upgraded: bool = False
    original_url: str = ""  # the URL the sender asked for (name, not pinned IP; no userinfo)

    # -- Correlation -------------------------------------------------------------------------------
    replay_of: str | None = None  # request id this exchange replays (`hookwall replay`)

    # -- ``close_after`` only (HopHeaders, AccessControl, DestinationGuard call it) ----------------
    closes_connection: CloseWhy | None = None  # ExchangeEnd says so on the response

    # -- BodyCaps ----------------------------------------------------------------------------------
    body_deadline: Hold | None = None  # until the request body is whole

    # -- FloodControl ------------------------------------------------------------------------------
    limit_key: str | None = None
    queue_ms: float | None = None
    slot: Slot | None = None  # from admission to the receiver's verdict

    # -- RequestSigning ----------------------------------------------------------------------------
    signed: str | None = None  # the scheme that signed ("sender" when the sender's was kept)
    key_ids: tuple[str, ...] = ()
    webhook_id: str | None = None

    # -- Deadlines ---------------------------------------------------------------------------------
    clocks: ResponseClocks | None = None  # from admission until the response (or the end)

    # -- Redirects ---------------------------------------------------------------------------------
    redirect: RedirectRecord | None = None  # on a 3xx: status, location, action, hops

    # -- flow/respond.py (every refusal and every answer hookwall fetched goes through it) ---------
    denial: Denial | None = None
    error: str | None = None  # the low-level failure (mitmproxy's message), when it matters
    received_status: int | None = None  # the receiver's own status, when we replaced it
    own_response: http.Response | None = None  # the refusal hookwall wrote itself

    # -- ExchangeLog -------------------------------------------------------------------------------
    logged: bool = False

    # -- PolicyGenerations (app/reload.py) ---------------------------------------------------------
    counted_under: Policy | None = None  # the snapshot it counts this exchange under, until its end

    def close_after(self, why: CloseWhy) -> None:
        """Ask that the sender's connection close after this exchange (mitmproxy would keep it
        open); the first reason asked is kept."""
        if self.closes_connection is None:
            self.closes_connection = why


@dataclass(slots=True)
class TunnelState:
    """What was decided for a CONNECT: the requests inside are bound to this host and IP.

    Made by DestinationGuard on the CONNECT; ``follow`` is the one writer after that."""

    decision: Decision
    policy: Policy | None  # None only for flows the guard never judged (unparseable requests)
    request_id: str
    sender: str | None = None  # verified on the CONNECT: holds for every request inside
    would_deny: tuple[tuple[Reason, str], ...] = ()  # report-only access verdicts of the CONNECT
    # The CONNECT's destination was refused, and the refusal is answered inside the TLS session
    # (``connect_refusals: inside-tls``): every request inside gets it, nothing goes upstream.
    refusal: Denial | None = None

    @property
    def passthrough(self) -> bool:
        """Its bytes are tunnelled untouched (``tls: passthrough``): no request is ever seen."""
        settings = self.decision.settings
        return self.refusal is None and settings is not None and settings.tls == "passthrough"

    def follow(self, decision: Decision, policy: Policy) -> None:
        """The tunnel goes on under a reloaded policy (DestinationGuard for an intercepted one,
        PassthroughTunnels for a passthrough one): judged anew, still pinned where it is."""
        self.decision = dataclasses.replace(decision, pinned_ip=self.decision.pinned_ip)
        self.policy = policy


def start_state(flow: http.HTTPFlow, policy: Policy, tunnel: TunnelState | None) -> FlowState:
    """The flow's state, created on first use with the policy snapshot it will keep. A request
    inside a refused tunnel is answered with the CONNECT's refusal: it keeps its request id."""
    state = state_of(flow)
    if state is None:
        if tunnel is not None and tunnel.refusal is not None:
            state = FlowState(policy=tunnel.policy, tunnel=tunnel, request_id=tunnel.request_id)
        else:
            state = FlowState(policy=tunnel.policy if tunnel else policy, tunnel=tunnel)
        attach_state(flow, state)
    return state


def attach_state(flow: http.HTTPFlow, state: FlowState) -> FlowState:
    """Make ``state`` the flow's (a hop's own state, or one for a flow nobody judged)."""
    flow.metadata[METADATA_KEY] = state
    return state


def state_of(flow: http.HTTPFlow) -> FlowState | None:
    state = flow.metadata.get(METADATA_KEY)
    return state if isinstance(state, FlowState) else None
