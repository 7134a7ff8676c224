"""FlowState is the one flow.metadata key, and each of its fields has one writer.

The writers are found in the source: every assignment to ``state.<field>`` (the name every
addon gives the flow's state), and every ``state.<field>.<append|extend>`` call. A new writer
of a field shows up here, to be routed through the field's one writer or written down.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
from collections import defaultdict
from ipaddress import ip_address
from pathlib import Path

from mitmproxy.test import tflow

import hookwall
from hookwall.destinations.decide import Decision
from hookwall.flow.state import FlowState, ResponseClocks, TunnelState, start_state, state_of
from hookwall.policy import load_default_policy

SRC = Path(hookwall.__file__).parent

# field -> the one module that writes it after the state was made (DestinationGuard, say).
WRITERS = {
    "attempted_sender": "access/addon.py",
    "sender": "access/addon.py",
    "would_deny": "access/addon.py",
    "body_deadline": "bounds/addons/bodycaps.py",
    "clocks": "bounds/addons/deadlines.py",
    "counted_under": "app/reload.py",
    "decision": "destinations/addons/guard.py",
    "original_url": "destinations/addons/guard.py",
    "policy": "destinations/addons/guard.py",
    "upgraded": "destinations/addons/guard.py",
    "replay_of": "deliveries/addons/correlate.py",
    "logged": "deliveries/addons/exchangelog.py",
    "closes_connection": "flow/state.py",  # FlowState.close_after, which the addons call
    "denial": "flow/respond.py",
    "error": "flow/respond.py",
    "own_response": "flow/respond.py",
    "received_status": "flow/respond.py",
    "limit_key": "limits/addon.py",
    "queue_ms": "limits/addon.py",
    "slot": "limits/addon.py",
    "redirect": "redirects/addon.py",
    "self_answered": "selfanswer/addon.py",
    "key_ids": "signing/addon.py",
    "signed": "signing/addon.py",
    "webhook_id": "signing/addon.py",
}
# Set when the state is made, never written after.
MADE_WITH = {
    "request_id",
    "started",
    "tunnel",
    "attempt",
    "hop",
    "internal",
    "chain_signed",
    "holds",
}


def _written_field(target: ast.expr, receivers: set[str]) -> str | None:
    if isinstance(target, ast.Subscript):
        target = target.value
    if not isinstance(target, ast.Attribute) or not isinstance(target.value, ast.Name):
        return None
    return target.attr if target.value.id in receivers else None


def _writes(tree: ast.AST, receivers: set[str]) -> set[str]:
    """The attributes written on any of ``receivers`` (variable names) in ``tree``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [
                e for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])
            ]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "extend")
        ):
            targets = [node.func.value]
        found |= {name for t in targets if (name := _written_field(t, receivers)) is not None}
    return found


def test_each_field_of_the_flow_state_has_one_writer() -> None:
    fields = {f.name for f in dataclasses.fields(FlowState)}
    assert set(WRITERS) | MADE_WITH == fields
    writers: defaultdict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        module = path.relative_to(SRC).as_posix()
        # In flow/state.py only FlowState's own methods write (on ``self``).
        receivers = {"self"} if module == "flow/state.py" else {"state"}
        for name in _writes(ast.parse(path.read_text()), receivers) & fields:
            if module != "flow/state.py" or name == "closes_connection":
                writers[name].add(module)
    assert {name: sorted(modules) for name, modules in writers.items()} == {
        name: [module] for name, module in WRITERS.items()
    }


def test_the_state_is_the_flows_one_metadata_key() -> None:
    flow = tflow.tflow()
    state = start_state(flow, load_default_policy(), None)
    state.close_after("sender-asked")
    assert state_of(flow) is state and list(flow.metadata) == ["hookwall"]


def test_the_first_reason_to_close_the_connection_is_kept() -> None:
    state = FlowState(policy=None)
    assert state.closes_connection is None
    state.close_after("no-credentials")
    state.close_after("sender-asked")
    assert state.closes_connection == "no-credentials"


def test_a_tunnel_follows_a_reload_where_it_is_connected() -> None:
    policy = load_default_policy()
    pinned = Decision(True, None, "ok", "a.test", 443, pinned_ip=ip_address("192.0.2.1"))
    tunnel = TunnelState(pinned, None, "req_1")
    tunnel.follow(Decision(True, None, "again", "a.test", 443), policy)
    assert tunnel.decision.message == "again" and tunnel.policy is policy
    assert str(tunnel.decision.pinned_ip) == "192.0.2.1"


def test_the_response_clocks_stop_once() -> None:
    async def go() -> list[str]:
        fired: list[str] = []
        loop = asyncio.get_running_loop()
        clocks = ResponseClocks(
            headers=loop.call_later(0, fired.append, "headers"),
            whole=loop.call_later(0, fired.append, "whole"),
        )
        clocks.stop_headers()
        clocks.stop_headers()
        assert clocks.headers is None and clocks.whole is not None
        clocks.stop()
        clocks.stop()
        await asyncio.sleep(0.01)
        return fired

    assert asyncio.run(go()) == []
