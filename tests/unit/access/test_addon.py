"""AccessControl in process: who sent each request, or hookwall's own 407/403 answer.

Driven through mitmproxy's addon dispatch with test flows and a real policy; the credential
rules themselves are tests/unit/access/test_access.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ClientConnectedHook

from hookwall.access import addon as access_addon
from hookwall.access.addon import AccessControl
from hookwall.access.decide import CHALLENGE
from hookwall.core.headers import INTERNAL as INTERNAL_HEADER
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.redirects.addon import InternalHops
from tests.unit.support.flows import (
    assert_passed,
    assert_refused,
    basic,
    connect_to,
    inside,
    load,
    request_to,
    runtime_for,
)
from tests.unit.support.mitm import (
    HttpConnectHook,
    HttpRequestHeadersHook,
    HttpResponseHook,
    run_hooks,
)

TOKENS = {
    "BILLING": "billing-token-0123456789abcdef",
    "REMOTE": "remote-token-0123456789abcdefgh",
    "TRIAL": "trial-token-0123456789abcdefghij",
}
POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
senders:
  billing:
    credentials: [env:HW_ACL_BILLING]
  remote:
    credentials: [env:HW_ACL_REMOTE]
    clients: [10.0.0.0/8]
  trial:
    credentials: [env:HW_ACL_TRIAL]
    clients: [10.0.0.0/8]
    enforce: false
"""
OPEN_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
"""


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    for name, token in TOKENS.items():
        monkeypatch.setenv(f"HW_ACL_{name}", token)
    return runtime_for(load(tmp_path, POLICY))


@pytest.fixture
def guard(runtime: Runtime) -> DestinationGuard:
    return DestinationGuard(runtime)


@pytest.fixture
def access(runtime: Runtime, guard: DestinationGuard) -> AccessControl:
    return AccessControl(runtime, guard.tunnels)


def sent_with(*credentials: str) -> http.HTTPFlow:
    flow = request_to("127.0.0.2", 8080)
    for value in credentials:
        flow.request.headers.add("Proxy-Authorization", value)
    return flow


@pytest.mark.parametrize(
    "credential",
    [basic("billing", TOKENS["BILLING"]), "Bearer " + TOKENS["BILLING"]],
    ids=["basic", "bearer"],
)
def test_a_sender_with_valid_credentials_goes_on_known_and_without_them(
    access: AccessControl, credential: str
) -> None:
    flow = sent_with(credential)
    run_hooks([access], HttpRequestHeadersHook(flow))
    found = assert_passed(flow)
    assert found.sender == "billing" and found.attempted_sender is None
    assert "Proxy-Authorization" not in flow.request.headers  # never forwarded nor logged


@pytest.mark.parametrize(
    ("credentials", "attempted"),
    [
        ((), None),
        ((basic("billing", "not-the-token-0123456789abcdef"),), "billing"),
        ((basic("mallory", TOKENS["BILLING"]),), None),  # an unknown name may be a token
        (("Bearer " + TOKENS["BILLING"], "Bearer " + TOKENS["BILLING"]), None),
        (("Digest abc",), None),
    ],
    ids=["none", "wrong-token", "unknown-name", "two-headers", "other-scheme"],
)
def test_missing_or_wrong_credentials_are_answered_407_and_the_connection_closes(
    runtime: Runtime, access: AccessControl, credentials: tuple[str, ...], attempted: str | None
) -> None:
    lifecycle = Lifecycle(runtime, {})
    flow = sent_with(*credentials)
    run_hooks(
        [lifecycle, access, lifecycle.end],
        ClientConnectedHook(flow.client_conn),
        HttpRequestHeadersHook(flow),
        HttpResponseHook(flow),  # mitmproxy's next hook for a flow answered early
    )
    found = assert_refused(flow, 407, "auth-required")
    assert flow.response is not None
    assert flow.response.headers["Proxy-Authenticate"] == CHALLENGE
    assert flow.response.headers["Connection"] == "close"  # no keep-alive without credentials
    assert found.sender is None and found.attempted_sender == attempted
    assert "Proxy-Authorization" not in flow.request.headers


def test_a_sender_outside_its_clients_is_refused_403(
    runtime: Runtime, access: AccessControl
) -> None:
    """tflow's client connects from 127.0.0.1; remote may only connect from 10.0.0.0/8."""
    lifecycle = Lifecycle(runtime, {})
    flow = sent_with(basic("remote", TOKENS["REMOTE"]))
    run_hooks(
        [lifecycle, access, lifecycle.end],
        ClientConnectedHook(flow.client_conn),
        HttpRequestHeadersHook(flow),
        HttpResponseHook(flow),
    )
    found = assert_refused(flow, 403, "sender-denied")
    assert found.sender == "remote"  # known, and refused
    assert flow.response is not None and "Connection" not in flow.response.headers
    assert "Proxy-Authenticate" not in flow.response.headers


def test_a_report_only_sender_goes_on_with_what_would_have_been_refused(
    access: AccessControl,
) -> None:
    flow = sent_with(basic("trial", TOKENS["TRIAL"]))
    run_hooks([access], HttpRequestHeadersHook(flow))
    found = assert_passed(flow)
    assert found.sender == "trial"
    assert [why for why, _ in found.would_deny] == ["sender-denied"]


def test_without_senders_nobody_is_asked_and_no_credential_is_forwarded(tmp_path: Path) -> None:
    runtime = runtime_for(load(tmp_path, OPEN_POLICY))
    flow = sent_with("Basic c29tZTpvbmU=")
    run_hooks([AccessControl(runtime, {})], HttpRequestHeadersHook(flow))
    assert assert_passed(flow).sender is None
    assert "Proxy-Authorization" not in flow.request.headers


def test_a_connect_is_judged_once_and_its_sender_holds_inside_the_tunnel(
    access: AccessControl, guard: DestinationGuard
) -> None:
    tunnel = connect_to("127.0.0.2", 443)
    tunnel.request.headers["Proxy-Authorization"] = basic("billing", TOKENS["BILLING"])
    request = inside(tunnel, "127.0.0.2")  # carries no credentials of its own
    run_hooks([access, guard], HttpConnectHook(tunnel), HttpRequestHeadersHook(request))
    assert assert_passed(tunnel).sender == "billing"
    assert assert_passed(request).sender == "billing"


def test_a_report_only_verdict_of_the_connect_is_carried_by_every_request_inside(
    access: AccessControl, guard: DestinationGuard
) -> None:
    tunnel = connect_to("127.0.0.2", 443)
    tunnel.request.headers["Proxy-Authorization"] = basic("trial", TOKENS["TRIAL"])
    requests = [inside(tunnel, "127.0.0.2") for _ in range(2)]
    run_hooks(
        [access, guard],
        HttpConnectHook(tunnel),
        *(HttpRequestHeadersHook(request) for request in requests),
    )
    for request in requests:
        assert [why for why, _ in assert_passed(request).would_deny] == ["sender-denied"]


def test_a_connect_without_credentials_is_refused_before_the_guard_judges_it(
    access: AccessControl, guard: DestinationGuard
) -> None:
    tunnel = connect_to("127.0.0.2", 443)
    run_hooks([access, guard], HttpConnectHook(tunnel))
    found = assert_refused(tunnel, 407, "auth-required")
    assert found.decision is None  # nothing judged, no DNS asked
    assert tunnel.client_conn.id not in guard.tunnels  # no tunnel opened


def test_a_hop_of_hookwalls_own_keeps_its_delivery_sender_without_credentials(
    runtime: Runtime, access: AccessControl
) -> None:
    flow = sent_with()
    flow.request.headers[INTERNAL_HEADER] = f"{runtime.internal_token} rid=r1 hop=1 sender=billing"
    run_hooks([InternalHops(runtime), access], HttpRequestHeadersHook(flow))
    found = assert_passed(flow)
    assert found.internal and found.sender == "billing"


@pytest.fixture
def broken_authentication(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A bug below the adapter (fault injection: the real check, made to raise)."""

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(access_addon, "authenticate", explode)
    yield


@pytest.mark.usefixtures("broken_authentication")
def test_access_control_fails_closed(access: AccessControl) -> None:
    flow = sent_with(basic("billing", TOKENS["BILLING"]))
    run_hooks([access], HttpRequestHeadersHook(flow))
    found = assert_refused(flow, 403, "internal-error")
    assert found.denial is not None and "RuntimeError" in found.denial.message
    assert "Proxy-Authorization" not in flow.request.headers
