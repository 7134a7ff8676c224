"""Redirect policy through the real proxy: a receiver's 3xx can never reach an internal address.

The receiver at 127.0.0.2 (allowed by policy) redirects wherever the test asks
(``/redirect?to=URL&code=302``); its twin at 127.0.0.1 (same port) must never see a
connection. Followed hops are new requests through the proxy: judged, pinned, signed and
logged like first requests.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from hookwall.deliveries.redaction import redact_url as logged
from tests.support.launcher import ProxyLauncher
from tests.support.netns import needs_isolation
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import Twins

pytestmark = pytest.mark.integration

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  ca_bundle: {ca}
destinations:
  - hosts: [deny.redir.test]
  - hosts: [pass.redir.test]
    redirects: {mode: pass}
  - hosts: [follow.redir.test, tlsfollow.hooks.test]
    redirects: {mode: follow, scope: any, max_hops: 2}
  - hosts: [samehost.redir.test]
    redirects: {mode: follow, scope: same_host}
  - hosts: [signed.redir.test, other-signed.redir.test]
    redirects: {mode: follow, scope: any}
    signing: {scheme: standard-webhooks, secrets: [env:HW_REDIR_WHSEC]}
  - hosts: [other.redir.test]
"""
NAMES = {
    **{
        f"{name}.redir.test": "127.0.0.2"
        for name in ("deny", "pass", "follow", "samehost", "signed", "other-signed", "other")
    },
    "foo.lvh.test": "127.0.0.1",
    "tlsfollow.hooks.test": "127.0.0.2",
}


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES, env={"HW_REDIR_WHSEC": WHSEC})


def post(proxy: ProxyProcess, url: str, body: bytes = b'{"n": 1}') -> requests.Response:
    return requests.post(url, data=body, proxies={"http": proxy.url}, timeout=20)


def redirect(host: str, port: int, to: str, code: int = 302) -> str:
    return f"http://{host}:{port}/redirect?to={quote(to, safe='')}&code={code}"


def test_deny_is_the_default_and_names_the_target(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, forbidden = plain_twins
    target = f"http://127.0.0.1:{forbidden.port}/internal"
    r = post(proxy, redirect("deny.redir.test", allowed.port, target))
    assert r.status_code == 502
    assert r.headers["X-Hookwall-Reason"] == "redirect-denied"
    assert r.headers["X-Hookwall-Redirect-Location"] == target
    event = proxy.exchange(r.json()["request_id"])
    assert event["redirect"] == {"status": 302, "location": target, "action": "denied"}
    assert forbidden.connections == 0


def test_pass_relays_the_redirect_unchanged(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    target = "http://169.254.169.254/latest/meta-data/"
    r = requests.post(
        redirect("pass.redir.test", allowed.port, target),
        data=b"{}",
        proxies={"http": proxy.url},
        allow_redirects=False,
        timeout=20,
    )
    assert r.status_code == 302 and r.headers["Location"] == target
    # The logged URL is redacted: the receiver's ``code`` parameter reads as a credential.
    event = proxy.exchange(url=logged(redirect("pass.redir.test", allowed.port, target)))
    assert event["redirect"]["action"] == "passed"


def test_followed_redirects_reach_the_final_receiver_and_are_logged_per_hop(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, forbidden = plain_twins
    final = f"http://other.redir.test:{allowed.port}/final"
    middle = redirect("follow.redir.test", allowed.port, final, 301)
    r = post(proxy, redirect("follow.redir.test", allowed.port, middle))
    assert r.status_code == 200, r.text
    assert allowed.requests[-1].path == "/final"
    assert allowed.requests[-1].method == "POST"  # keep-method is the default for webhooks
    assert allowed.requests[-1].body == b'{"n": 1}'
    first = proxy.exchange(hop=0, url=logged(redirect("follow.redir.test", allowed.port, middle)))
    hops = [e for e in proxy.events if e.get("request_id") == first["request_id"]]
    assert sorted(e["hop"] for e in hops) == [0, 1, 2]
    assert first["status"] == 302 and first["redirect"]["action"] == "followed"
    assert first["redirect"]["hops"] == 2
    assert forbidden.connections == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/loopback",
        "http://localhost:{port}/",
        "http://foo.lvh.test:{port}/",
        "http://2130706433:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_followed_hops_to_internal_addresses_are_refused(
    proxy: ProxyProcess, plain_twins: Twins, target: str
) -> None:
    allowed, forbidden = plain_twins
    to = target.format(port=forbidden.port)
    r = post(proxy, redirect("follow.redir.test", allowed.port, to))
    assert r.status_code == 502, r.text
    assert r.headers["X-Hookwall-Reason"] == "redirect-denied"
    assert "address-blocked" in r.json()["message"]
    assert forbidden.connections == 0
    hop = proxy.exchange(r.json()["request_id"], hop=1)
    assert hop["reason"] == "address-blocked"


@needs_isolation
@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:10.0.0.1]/"]
)
def test_followed_hops_to_metadata_and_private_literals_are_refused(
    proxy: ProxyProcess, plain_twins: Twins, target: str
) -> None:
    allowed, _ = plain_twins
    r = post(proxy, redirect("follow.redir.test", allowed.port, target))
    assert r.status_code == 502 and "address-blocked" in r.json()["message"]


def test_relative_location_is_resolved_against_the_current_url(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    r = post(proxy, redirect("follow.redir.test", allowed.port, "/relative/target"))
    assert r.status_code == 200
    assert allowed.requests[-1].path == "/relative/target"


def test_loops_and_too_many_hops_are_refused(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    r = post(proxy, f"http://follow.redir.test:{allowed.port}/loop")
    assert r.status_code == 502 and "redirect loop" in r.json()["message"]
    assert post(proxy, f"http://follow.redir.test:{allowed.port}/hops?n=2").status_code == 200
    r = post(proxy, f"http://follow.redir.test:{allowed.port}/hops?n=3")  # max_hops is 2
    assert r.status_code == 502 and "more than 2 redirects" in r.json()["message"]


def test_same_host_scope_refuses_another_host(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    other = f"http://other.redir.test:{allowed.port}/x"
    r = post(proxy, redirect("samehost.redir.test", allowed.port, other))
    assert r.status_code == 502 and "same_host" in r.json()["message"]
    same = f"http://samehost.redir.test:{allowed.port}/same"
    assert post(proxy, redirect("samehost.redir.test", allowed.port, same)).status_code == 200


def test_missing_and_malformed_locations(proxy: ProxyProcess, plain_twins: Twins) -> None:
    allowed, _ = plain_twins
    r = post(proxy, f"http://follow.redir.test:{allowed.port}/redirect?code=302")
    assert r.status_code == 502 and "without a Location" in r.json()["message"]
    r = post(proxy, redirect("follow.redir.test", allowed.port, "file:///etc/passwd"))
    assert r.status_code == 502 and "not an http(s) URL" in r.json()["message"]


def test_307_keeps_the_post_body_and_the_hop_is_re_signed(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    body = b'{"type": "invoice.paid"}'
    target = f"http://other-signed.redir.test:{allowed.port}/signed-final"
    r = post(proxy, redirect("signed.redir.test", allowed.port, target, 307), body)
    assert r.status_code == 200, r.text
    first, final = allowed.requests[-2], allowed.requests[-1]
    assert final.path == "/signed-final" and final.method == "POST" and final.body == body
    assert final.headers["webhook-id"] == first.headers["webhook-id"]  # same delivery
    assert final.headers["webhook-signature"] != first.headers["webhook-signature"] or (
        final.headers["webhook-timestamp"] == first.headers["webhook-timestamp"]
    )
    Webhook(WHSEC).verify(final.body, final.headers)


def test_a_signed_delivery_is_not_redirected_to_an_unsigned_target(
    proxy: ProxyProcess, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    before = len(allowed.requests)
    target = f"http://other.redir.test:{allowed.port}/unsigned"
    r = post(proxy, redirect("signed.redir.test", allowed.port, target, 307))
    assert r.status_code == 502 and r.headers["X-Hookwall-Reason"] == "redirect-denied"
    assert "never delivered unsigned" in r.json()["message"]
    assert len(allowed.requests) == before + 1  # only the first receiver, not the target


def test_no_downgrade_from_https_to_http(proxy: ProxyProcess, tls_twins: Twins) -> None:
    allowed, forbidden = tls_twins
    target = f"http://tlsfollow.hooks.test:{allowed.port}/plain"
    url = (
        f"https://tlsfollow.hooks.test:{allowed.port}/redirect?to={quote(target, safe='')}&code=302"
    )
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=20) as client:
        r = client.post(url, content=b"{}")
    assert r.status_code == 502
    assert "https to http" in json.loads(r.content)["message"]
    assert forbidden.connections == 0
    same = f"https://tlsfollow.hooks.test:{allowed.port}/still-tls"
    url = f"https://tlsfollow.hooks.test:{allowed.port}/redirect?to={quote(same, safe='')}"
    with httpx.Client(proxy=proxy.url, verify=trusting(proxy.ca_cert), timeout=20) as client:
        assert client.post(url, content=b"{}").status_code == 200  # https hops are verified
    assert allowed.requests[-1].path == "/still-tls"
