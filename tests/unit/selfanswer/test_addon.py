"""SelfAnswer in process: hookwall.invalid answered after access control, never judged by the
guard; its tunnels keep the CONNECT's sender; the CA it names is the one mitmproxy signs with.

Driven through mitmproxy's addon dispatch with test flows and a real policy, between the real
AccessControl and DestinationGuard; the guard's resolver points at a port where nothing
answers, so a lookup would fail the request (dns-failed), never pass it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import certs, http
from mitmproxy.addons import tlsconfig
from mitmproxy.proxy.mode_specs import ProxyMode

from hookwall.access.addon import AccessControl
from hookwall.destinations.addons.guard import DestinationGuard
from hookwall.flow.runtime import Runtime
from hookwall.policy import load_default_policy
from hookwall.selfanswer.addon import SelfAnswer
from hookwall.selfanswer.answer import fingerprint
from tests.unit.support.flows import (
    assert_refused,
    basic,
    connect_to,
    inside,
    load,
    request_to,
    runtime_for,
    state,
)
from tests.unit.support.mitm import HttpConnectHook, HttpRequestHeadersHook, run_hooks

TOKEN = "billing-token-0123456789abcdef"
SENDERS = """\
version: 1
senders:
  billing: {credentials: [env:HW_SA_BILLING]}
"""


class Chain:
    """AccessControl, SelfAnswer and the DestinationGuard, in the pipeline's order."""

    def __init__(self, runtime: Runtime, tls: tlsconfig.TlsConfig | None = None) -> None:
        self.runtime = runtime
        self.guard = DestinationGuard(runtime)
        self.access = AccessControl(runtime, self.guard.tunnels)
        self.answers = SelfAnswer(runtime, self.guard.tunnels, tls)

    @property
    def addons(self) -> list[object]:
        return [self.access, self.answers, self.guard]


@pytest.fixture
def chain() -> Chain:
    return Chain(runtime_for(load_default_policy()))


@pytest.fixture
def senders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Chain:
    monkeypatch.setenv("HW_SA_BILLING", TOKEN)
    return Chain(runtime_for(load(tmp_path, SENDERS)))


def whoami(flow: http.HTTPFlow) -> Any:
    assert flow.response is not None and flow.response.status_code == 200
    return json.loads(flow.response.get_text() or "")


def test_a_plain_request_is_answered_and_never_judged(chain: Chain) -> None:
    flow = request_to("hookwall.invalid", method="GET", path="/whoami", body=b"")
    flow.client_conn.timestamp_tls_setup = None  # plain HTTP (tflow's client did TLS)
    run_hooks(chain.addons, HttpRequestHeadersHook(flow))
    doc = whoami(flow)
    found = state(flow)
    assert found.self_answered and found.decision is None and found.denial is None
    assert doc["request_id"] == found.request_id and doc["mode"] == "regular"
    assert (doc["sender"], doc["senders_required"], doc["tls"]) == (None, False, False)
    assert flow.request.host == "hookwall.invalid"  # never pinned to an address


@pytest.mark.parametrize("host", ["HOOKWALL.INVALID", "hookwall.invalid."])
def test_any_spelling_of_the_name_is_answered(chain: Chain, host: str) -> None:
    flow = request_to(host, method="GET", path="/", body=b"")
    run_hooks(chain.addons, HttpRequestHeadersHook(flow))
    assert state(flow).self_answered and flow.response is not None
    assert flow.response.status_code == 200


def test_other_destinations_are_left_to_the_guard(chain: Chain) -> None:
    flow = request_to("127.0.0.2", method="GET", path="/whoami", body=b"")
    flow.request.headers["Host"] = "hookwall.invalid"  # the target decides, not Host
    run_hooks(chain.addons, HttpRequestHeadersHook(flow))
    assert not state(flow).self_answered
    assert_refused(flow, 403, "address-blocked")  # the guard judged it


def test_a_transparent_listener_reads_the_name_from_host(chain: Chain) -> None:
    flow = request_to("192.0.2.7", method="GET", path="/whoami", body=b"")
    flow.client_conn.proxy_mode = ProxyMode.parse("transparent")
    flow.request.headers["Host"] = "hookwall.invalid:8080"
    run_hooks(chain.addons, HttpRequestHeadersHook(flow))
    assert whoami(flow)["mode"] == "transparent"


def test_head_gets_the_headers_of_get_and_no_body(chain: Chain) -> None:
    get = request_to("hookwall.invalid", method="GET", path="/whoami", body=b"")
    head = request_to("hookwall.invalid", method="HEAD", path="/whoami", body=b"")
    run_hooks(chain.addons, HttpRequestHeadersHook(get), HttpRequestHeadersHook(head))
    assert get.response is not None and head.response is not None
    assert head.response.raw_content == b""
    length = head.response.headers["Content-Length"]
    assert length == get.response.headers["Content-Length"] and int(length) > 0


def test_without_credentials_the_sender_gets_the_usual_407(senders: Chain) -> None:
    flow = request_to("hookwall.invalid", method="GET", path="/whoami", body=b"")
    tunnel = connect_to("hookwall.invalid", 443)
    run_hooks(senders.addons, HttpRequestHeadersHook(flow), HttpConnectHook(tunnel))
    for refused in (flow, tunnel):
        assert_refused(refused, 407, "auth-required")
        assert not state(refused).self_answered
    assert senders.guard.tunnels == {}


def test_a_tunnel_keeps_the_connects_sender_for_the_requests_inside(senders: Chain) -> None:
    tunnel = connect_to("hookwall.invalid", 443)
    tunnel.request.headers["Proxy-Authorization"] = basic("billing", TOKEN)
    request = inside(tunnel, "hookwall.invalid", "/whoami")
    request.request.method = "GET"
    assert request.client_conn.tls_established  # tflow's client: inside TLS
    run_hooks(senders.addons, HttpConnectHook(tunnel), HttpRequestHeadersHook(request))
    assert tunnel.response is None  # mitmproxy answers 200 and opens the tunnel
    assert state(tunnel).self_answered and state(tunnel).decision is None
    assert tunnel.request.host == "hookwall.invalid"  # never pinned to an address
    doc = whoami(request)
    assert (doc["sender"], doc["senders_required"], doc["tls"]) == ("billing", True, True)
    assert "handshake" in doc["ca"]


def test_inside_its_tunnel_any_host_header_is_answered_never_forwarded(chain: Chain) -> None:
    tunnel = connect_to("hookwall.invalid", 443)
    request = inside(tunnel, "127.0.0.2", "/whoami")  # Host names another host
    run_hooks(chain.addons, HttpConnectHook(tunnel), HttpRequestHeadersHook(request))
    assert state(request).self_answered and request.response is not None
    assert request.response.status_code == 405  # request_to's POST


def test_a_tunnel_opened_before_a_reload_closes_after_its_answer(tmp_path: Path) -> None:
    chain = Chain(runtime_for(load_default_policy()))
    tunnel = connect_to("hookwall.invalid", 443)
    request = inside(tunnel, "hookwall.invalid", "/whoami")

    def reload() -> None:
        chain.runtime.policy = load(tmp_path, "version: 1\n")

    run_hooks(chain.addons, HttpConnectHook(tunnel), reload, HttpRequestHeadersHook(request))
    assert request.response is not None and state(request).self_answered
    assert state(request).closes_connection == "policy-reloaded"


def test_the_ca_named_and_served_is_the_one_mitmproxy_signs_with(
    chain: Chain, tmp_path: Path
) -> None:
    tls = tlsconfig.TlsConfig()
    tls.certstore = certs.CertStore.from_store(tmp_path, "mitmproxy", 2048)
    answers = Chain(chain.runtime, tls)
    who = request_to("hookwall.invalid", method="GET", path="/whoami", body=b"")
    pem = request_to("hookwall.invalid", method="GET", path="/ca.pem", body=b"")
    run_hooks(answers.addons, HttpRequestHeadersHook(who), HttpRequestHeadersHook(pem))
    ca = tls.certstore.default_ca
    assert whoami(who)["ca_sha256"] == fingerprint(ca.fingerprint())
    assert pem.response is not None and pem.response.content == ca.to_pem()


def test_an_answer_that_fails_is_a_500_never_a_request_sent_on(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("hookwall.selfanswer.addon.answer", broken)
    flow = request_to("hookwall.invalid", method="GET", path="/whoami", body=b"")
    run_hooks(chain.addons, HttpRequestHeadersHook(flow))
    assert flow.response is not None and flow.response.status_code == 500
    assert state(flow).self_answered and state(flow).decision is None
