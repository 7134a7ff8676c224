"""Debugging deliveries end to end: the real proxy fills the delivery store; `hookwall logs`
queries it, `hookwall replay` re-sends through the proxy (re-signed), `hookwall send-test`
shows the verdict; a broken store never stops deliveries."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe
from standardwebhooks.webhooks import Webhook

from hookwall.cli.main import main
from hookwall.deliveries.store import REDACTED, Row, Store, StoreError, store_path
from tests.support.adversary import Adversary
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess
from tests.support.receivers import Receiver, Twins

pytestmark = pytest.mark.integration

WHSEC = "whsec_" + base64.b64encode(b"delivery-store-tests-secret-32by").decode()
GITHUB_SECRET = "gh-secret-for-the-delivery-store"
STRIPE_SECRET = "whsec_stripe_delivery_store_0123456789"
SECRETS = {"HW_D_SW": WHSEC, "HW_D_GH": GITHUB_SECRET, "HW_D_STRIPE": STRIPE_SECRET}
TOKEN = "tok_receiver_bearer_5f0c1d"  # a credential the sender sends to the receiver
COOKIE = "session=cookie_value_9a8b7c"

POLICY = """\
version: 1
unsafe: true
logging:
  capture_body: 64KiB
  redact: {headers: [X-Tenant-Pin], query: [ticket]}
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  ca_bundle: {ca}
destinations:
  - hosts: [sw.hooks.test]
    signing: {scheme: standard-webhooks, secrets: [env:HW_D_SW]}
  - hosts: [gh.hooks.test]
    signing: {scheme: github, secrets: [env:HW_D_GH]}
  - hosts: [stripe.hooks.test]
    signing: {scheme: stripe, secrets: [env:HW_D_STRIPE]}
  - hosts: [nobody.hooks.test]
    logging: {capture_body: 0}
  - hosts: [small.hooks.test]
    logging: {capture_body: 16}
  - hosts: [big.hooks.test]
    max_request_body: 1KiB
  - hosts: [down.hooks.test]
  - hosts: [slow.hooks.test]
    timeouts: {headers: 300ms, response: 5s}
  - hosts: [slower.hooks.test]
    timeouts: {headers: 5s, response: 400ms}
"""
NAMES = [
    f"{name}.hooks.test"
    for name in ("sw", "gh", "stripe", "nobody", "small", "big", "down", "slow", "slower")
]
PLAIN = """\
version: 1
unsafe: true
defaults: {network: {allow: [127.0.0.2/32], ports: ["1-65535"]}}
"""
Setup = tuple[ProxyProcess, Path]  # the proxy, and its data directory (the store's)


@pytest.fixture(scope="module")
def setup(start_module_proxy: ProxyLauncher) -> Setup:
    proc = start_module_proxy(POLICY, names=NAMES, env=SECRETS)
    return proc, proc.data_dir


def post(proxy: ProxyProcess, url: str, body: bytes, **headers: str) -> requests.Response:
    return requests.post(url, data=body, headers=headers, proxies={"http": proxy.url}, timeout=10)


def request_id(response: requests.Response) -> str:
    value = response.headers["X-Hookwall-Request-Id"]
    assert value.startswith("req_")
    return value


def wait_rows(data: Path, *ids: str, timeout: float = 10) -> dict[str, Row]:
    """The rows of these exchanges, once the writer thread has committed them (it does within
    milliseconds; this polls the store rather than sleeping a fixed time)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            store = Store.open_readonly(store_path(data))
        except StoreError:
            rows: dict[str, Row] = {}
        else:
            rows = {i: row for i in ids if (row := store.get(i)) is not None}
            store.close()
        if len(rows) == len(ids) or time.monotonic() > deadline:
            assert set(rows) == set(ids), f"not in the store: {set(ids) - set(rows)}"
            return rows
        time.sleep(0.02)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def closed_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- what lands in the store ---------------------------------------------------------------
def test_deliveries_land_with_headers_bodies_and_the_logged_event(
    setup: Setup, plain_twins: Twins
) -> None:
    proxy, data = setup
    allowed, _ = plain_twins
    body = b'{"type": "invoice.paid", "marker": "captured-body-7e1f"}'
    r = post(
        proxy,
        f"http://sw.hooks.test:{allowed.port}/hook?x=1",
        body,
        Authorization=f"Bearer {TOKEN}",
        Cookie=COOKIE,
        **{"Content-Type": "application/json", "X-Custom": "kept"},
    )
    assert r.status_code == 200
    rid = request_id(r)
    row = wait_rows(data, rid)[rid]
    logged = proxy.exchange(rid)
    # One source of truth: the stored event is the logged line, field for field.
    assert row.event == {k: v for k, v in logged.items() if k not in ("ts", "level", "event")}
    assert abs(row.ts - datetime.fromisoformat(logged["ts"]).timestamp()) < 1
    headers = dict(row.request_headers or [])
    assert headers["Authorization"] == REDACTED and headers["Cookie"] == REDACTED
    assert headers["webhook-signature"] == REDACTED
    assert headers["webhook-id"] == allowed.requests[-1].headers["webhook-id"]
    assert headers["X-Custom"] == "kept"
    assert row.request_body == body and not row.request_truncated
    assert dict(row.response_headers or [])["Content-Type"] == "application/json"
    assert row.response_body == b'{"ok": true}'


def test_no_credential_or_signature_value_reaches_the_store_file(
    setup: Setup, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    allowed, _ = plain_twins
    seen_signatures = []
    ids = []
    for name, body in (
        ("sw", b'{"type": "a"}'),
        ("gh", b'{"action": "opened"}'),
        ("stripe", b'{"id": "evt_redaction", "object": "event"}'),
    ):
        r = post(
            proxy,
            f"http://{name}.hooks.test:{allowed.port}/",
            body,
            Authorization=f"Bearer {TOKEN}",
            Cookie=COOKIE,
        )
        assert r.status_code == 200
        ids.append(request_id(r))
        seen = allowed.requests[-1].headers
        seen_signatures += [
            seen[h] for h in ("webhook-signature", "x-hub-signature-256", "stripe-signature")
            if h in seen
        ]  # fmt: skip
    assert len(seen_signatures) == 3
    wait_rows(data, *ids)
    code, shown, _ = cli(capsys, "logs", "show", ids[0], "--data-dir", str(data))
    assert code == 0 and "marker" not in shown
    files = sorted(data.glob("deliveries.db*"))
    assert files
    raw = b"".join(path.read_bytes() for path in files)
    assert b'"action": "opened"' in raw  # the store does hold the bodies...
    forbidden = [TOKEN, COOKIE.split("=")[1], *SECRETS.values(), *seen_signatures]
    forbidden += [secret.split("_")[-1] for secret in SECRETS.values()]
    for value in forbidden:  # ...and none of these, anywhere in the file
        assert value.encode() not in raw, value
        assert value not in shown


# Credentials outside the old name heuristic, in headers and in the URL (query, fragment-free),
# plus one name only the policy's logging.redact adds.
CREDENTIAL_HEADERS = {
    "Ocp-Apim-Subscription-Key": "apim_9f8e7d6c5b4a",
    "X-Functions-Key": "funckey_1a2b3c4d5e",
    "X-Access-Key": "accesskey_77aa88bb",
    "Api_Key": "apikey_underscore_3141",
    "X-Signing-Key": "signingkey_2718",
    "X-Amz-Security-Token": "amztoken_0xdeadbeef",
    "X-Tenant-Pin": "tenantpin_55443322",  # the policy's addition
}
CREDENTIAL_QUERY = {
    "token": "qtoken_abcdef123",
    "api_key": "qapikey_456789",
    "sig": "qsig_sv2026xyz",
    "code": "qcode_functionkey_00",
    "access_token": "qaccess_tok_31337",
    "ticket": "qticket_policy_added",  # the policy's addition
}


def test_credentials_outside_the_old_heuristic_stay_out_of_log_and_store(
    setup: Setup, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    allowed, _ = plain_twins
    query = "&".join(f"{k}={v}" for k, v in CREDENTIAL_QUERY.items())
    start = proxy.mark()
    r = post(
        proxy,
        f"http://sw.hooks.test:{allowed.port}/creds?event=paid&{query}",
        b'{"type": "creds"}',
        **CREDENTIAL_HEADERS,
        **{"X-Request-Id": "trace-kept-42"},
    )
    assert r.status_code == 200
    rid = request_id(r)
    got = allowed.requests[-1]  # the receiver got every value intact
    assert got.path == f"/creds?event=paid&{query}"
    for name, value in CREDENTIAL_HEADERS.items():
        assert got.headers[name.lower()] == value
    row = wait_rows(data, rid)[rid]
    logged = proxy.exchange(rid, start=start)
    assert logged["url"].startswith(f"http://sw.hooks.test:{allowed.port}/creds?event=paid&")
    assert f"token={REDACTED}" in logged["url"] and row.event["url"] == logged["url"]
    stored = dict(row.request_headers or [])
    assert all(stored[name] == REDACTED for name in CREDENTIAL_HEADERS)
    assert stored["X-Request-Id"] == "trace-kept-42" and stored["Host"]

    lines = "\n".join(json.dumps(e) for e in proxy.events[start:])  # every JSON line since
    files = sorted(data.glob("deliveries.db*"))
    assert {f.name for f in files} >= {"deliveries.db", "deliveries.db-wal", "deliveries.db-shm"}
    for file in [*files, data / "mitmproxy-ca.pem"]:  # every file with secrets or bodies
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    raw = b"".join(path.read_bytes() for path in files)
    assert b"trace-kept-42" in raw  # the store does hold this row...
    code, listed, _ = cli(capsys, "logs", "--data-dir", str(data), "--json", "--limit", "500")
    assert code == 0
    code, shown, _ = cli(capsys, "logs", "show", rid, "--data-dir", str(data))
    assert code == 0 and "X-Functions-Key" in shown
    for value in [*CREDENTIAL_HEADERS.values(), *CREDENTIAL_QUERY.values()]:
        assert value not in lines, value  # ...and none of these, anywhere
        assert value.encode() not in raw, value
        assert value not in listed and value not in shown, value

    # Replaying it would send [redacted] as the token: refused unless the full URL is given.
    code, _, err = cli(capsys, "replay", rid, "--proxy", proxy.url, "--data-dir", str(data))
    assert code == 1 and "pass the full URL with --to" in err


def test_the_store_and_the_log_say_what_the_sender_was_told(setup: Setup) -> None:
    """Every failure is classified once: the reason and message in the sender's refusal are
    the stored row's and the log line's (a response timeout is not "server closed")."""
    proxy, data = setup
    adversary = Adversary()
    try:
        cases = {
            f"http://slow.hooks.test:{adversary.port}/hang": "response-timeout",
            f"http://slower.hooks.test:{adversary.port}/sleep?s=5": "response-timeout",
            f"http://slower.hooks.test:{adversary.port}/trickle": "response-timeout",
            f"http://down.hooks.test:{adversary.port}/partial": "upstream-error",
            f"http://down.hooks.test:{closed_port('127.0.0.2')}/": "upstream-error",
        }
        told = {}
        for url, reason in cases.items():
            r = post(proxy, url, b"{}")
            assert r.headers["X-Hookwall-Reason"] == reason, (url, r.text)
            told[request_id(r)] = (r.status_code, r.json())
    finally:
        adversary.stop()
    rows = wait_rows(data, *told)
    for rid, (status, body) in told.items():
        logged = proxy.exchange(rid)
        for event in (rows[rid].event, logged):
            assert event["reason"] == body["error"] and event["status"] == status
            assert event["error"] == body["message"], event
            if body["error"] == "response-timeout":  # not the consequence of our closing
                assert "closed connection" not in event["error"].lower(), event
    messages = [body["message"] for _, body in told.values()]
    assert "the receiver did not send the response headers within 0.3s" in messages
    assert "the receiver did not send the whole response within 0.4s" in messages


def test_filters_on_real_deliveries(
    setup: Setup, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    allowed, forbidden = plain_twins
    since = datetime.now(UTC).isoformat()
    port = allowed.port
    sent = {
        "ok": post(proxy, f"http://sw.hooks.test:{port}/a", b"{}"),
        "stripe": post(proxy, f"http://stripe.hooks.test:{port}/stripe/events",
                       b'{"id": "evt_filters", "object": "event"}'),
        "blocked": post(proxy, f"http://127.0.0.1:{forbidden.port}/", b"{}"),
        "down": post(proxy, f"http://down.hooks.test:{closed_port('127.0.0.2')}/", b"{}"),
        "big": post(proxy, f"http://big.hooks.test:{port}/", b"x" * 2048),
    }  # fmt: skip
    statuses = {k: r.status_code for k, r in sent.items()}
    assert statuses == {"ok": 200, "stripe": 200, "blocked": 403, "down": 502, "big": 413}
    ids = {k: request_id(r) for k, r in sent.items()}
    wait_rows(data, *ids.values())
    by_id = {v: k for k, v in ids.items()}

    def query(*args: str) -> list[str]:
        code, out, err = cli(capsys, "logs", "--data-dir", str(data), "--json", "--since", since,
                             *args)  # fmt: skip
        assert code == 0, err
        return [by_id[json.loads(line)["request_id"]] for line in out.splitlines()]

    assert query() == ["ok", "stripe", "blocked", "down", "big"]
    assert query("--host", "*.hooks.test") == ["ok", "stripe", "down", "big"]
    assert query("--status", "5xx") == ["down"]
    assert query("--status", "4xx") == ["blocked", "big"]
    assert query("--status", "denied") == ["blocked", "down", "big"]
    assert query("--status", "200", "--host", "s*.hooks.test") == ["ok", "stripe"]
    assert query("--reason", "upstream-error") == ["down"]
    assert query("--webhook-id", "evt_filters") == ["stripe"]  # Stripe's id, from the body
    assert query("--path", "/stripe/*") == ["stripe"]
    assert query("--host", "*.hooks.test", "--status", "4xx,5xx", "--limit", "1") == ["big"]
    assert query("--until", since) == []


# -- hookwall replay -------------------------------------------------------------------------
def test_replay_resends_through_the_proxy_resigned_and_linked(
    setup: Setup, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    allowed, _ = plain_twins
    body = b'{"type": "invoice.paid", "id": 1234}'
    r = post(
        proxy,
        f"http://sw.hooks.test:{allowed.port}/replay-me",
        body,
        Authorization=f"Bearer {TOKEN}",
        **{"Content-Type": "application/json", "X-Custom": "kept"},
    )
    assert r.status_code == 200
    original_id = request_id(r)
    first = allowed.requests[-1]
    wait_rows(data, original_id)

    code, out, err = cli(
        capsys, "replay", original_id, "--proxy", proxy.url, "--data-dir", str(data)
    )
    assert code == 0, err
    assert f"replayed {original_id} as req_" in out and "delivered" in out
    assert "not re-sent (redacted in the store): Authorization" in out
    again = allowed.requests[-1]
    assert again is not first and again.body == body and again.path == "/replay-me"
    # The receiver verifies a fresh signature over the same event id.
    Webhook(WHSEC).verify(again.body, again.headers)
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert int(again.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
    assert again.headers["x-custom"] == "kept"
    assert "authorization" not in again.headers
    assert not any(h.startswith("x-hookwall") for h in again.headers)

    new_id = out.split(" as ")[1].split(":")[0]
    event = proxy.exchange(new_id)
    assert event["replay_of"] == original_id
    assert event["webhook_id"] == first.headers["webhook-id"]
    assert event["signed"] == "standard-webhooks"
    wait_rows(data, new_id)
    code, shown, _ = cli(capsys, "logs", "show", original_id, "--data-dir", str(data))
    assert code == 0
    assert f"(replay of {original_id})" in shown and "attempts of webhook" in shown

    # --to: the same delivery, elsewhere (still judged and signed by the current policy).
    code, out, _ = cli(
        capsys, "replay", original_id, "--proxy", proxy.url, "--data-dir", str(data),
        "--to", f"http://sw.hooks.test:{allowed.port}/staging", "-H", "Authorization: Bearer x",
    )  # fmt: skip
    assert code == 0
    staged = allowed.requests[-1]
    assert staged.path == "/staging" and staged.headers["authorization"] == "Bearer x"
    Webhook(WHSEC).verify(staged.body, staged.headers)


def test_replay_refuses_without_a_whole_captured_body(
    setup: Setup, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    allowed, _ = plain_twins
    off = request_id(post(proxy, f"http://nobody.hooks.test:{allowed.port}/", b'{"pii": 1}'))
    cut = request_id(post(proxy, f"http://small.hooks.test:{allowed.port}/", b"y" * 100))
    rows = wait_rows(data, off, cut)
    assert rows[off].request_body is None and rows[off].request_headers
    assert rows[cut].request_body == b"y" * 16 and rows[cut].request_truncated
    before = len(allowed.requests)
    code, _, err = cli(capsys, "replay", off, "--proxy", proxy.url, "--data-dir", str(data))
    assert code == 1 and "body (10 bytes) was not captured" in err
    code, _, err = cli(capsys, "replay", cut, "--proxy", proxy.url, "--data-dir", str(data))
    assert code == 1 and "only the first 16 of 100 body bytes were captured" in err
    assert len(allowed.requests) == before  # nothing was sent


# -- hookwall send-test --------------------------------------------------------------------
def test_send_test_to_an_allowed_url(
    setup: Setup, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    allowed, _ = plain_twins
    url = f"http://sw.hooks.test:{allowed.port}/test"
    code, out, err = cli(
        capsys, "send-test", url, "--event", "invoice.paid", "--proxy", proxy.url,
        "--data-dir", str(data),
    )  # fmt: skip
    assert code == 0, err
    seen = allowed.requests[-1]
    doc = json.loads(seen.body)
    assert doc["type"] == "invoice.paid" and {"id", "timestamp", "data"} <= set(doc)
    Webhook(WHSEC).verify(seen.body, seen.headers)
    assert "delivered: the receiver answered 200" in out
    assert "signed       standard-webhooks (hmac:" in out
    assert f"webhook id   {doc['id']}" in out  # the sample's event id links its attempts
    assert "details      hookwall logs show req_" in out


def test_send_test_to_a_refused_url(
    setup: Setup, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    _, forbidden = plain_twins
    before = forbidden.connections
    code, out, _ = cli(
        capsys, "send-test", f"http://127.0.0.1:{forbidden.port}/", "--proxy", proxy.url,
        "--data-dir", str(data), "--json",
    )  # fmt: skip
    assert code == 1
    doc = json.loads(out)
    assert doc["status"] == 403 and doc["reason"] == "address-blocked"
    assert doc["refused_by_hookwall"] and not doc["delivered"]
    assert doc["request_id"].startswith("req_") and "loopback" in doc["message"]
    assert doc["signed"] is False
    assert forbidden.connections == before
    # https: refused inside TLS (the CONNECT is accepted), and still explained.
    code, out, _ = cli(
        capsys, "send-test", "https://localhost/", "--proxy", proxy.url, "--data-dir", str(data)
    )
    assert code == 1
    assert "refused by hookwall: 403 address-blocked" in out and "request id   req_" in out


def test_send_test_over_https_through_the_tunnel(
    setup: Setup, tls_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, data = setup
    allowed, _ = tls_twins
    code, out, err = cli(
        capsys, "send-test", f"https://stripe.hooks.test:{allowed.port}/s", "--proxy", proxy.url,
        "--data-dir", str(data),
    )  # fmt: skip
    assert code == 0, err
    seen = allowed.requests[-1]
    assert stripe.WebhookSignature.verify_header(
        seen.body.decode(), seen.headers["stripe-signature"], STRIPE_SECRET, 300
    )
    assert "signed       stripe" in out


# -- a broken store never stops deliveries -----------------------------------------------------
def one_delivery(proxy: ProxyProcess, receiver: Receiver) -> dict[str, Any]:
    r = post(proxy, f"http://127.0.0.2:{receiver.port}/", b'{"still": "delivered"}')
    assert r.status_code == 200
    return proxy.exchange(request_id(r))


def test_a_corrupt_store_does_not_stop_forwarding(
    start_proxy: ProxyLauncher, tmp_path: Path, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    data = tmp_path / "data"
    data.mkdir()
    (data / "deliveries.db").write_bytes(b"not a database, just garbage " * 200)
    proxy = start_proxy(PLAIN, data_dir=data)
    problem = proxy.wait_for(lambda e: e.get("event") == "store_unavailable")
    assert "deliveries.db" in problem["path"] and problem["level"] == "warning"
    event = one_delivery(proxy, allowed)
    assert event["status"] == 200  # forwarded, and the JSON line is there


def test_no_store_keeps_only_the_log_lines(
    start_proxy: ProxyLauncher, plain_twins: Twins, capsys: pytest.CaptureFixture[str]
) -> None:
    allowed, _ = plain_twins
    proxy = start_proxy(PLAIN, args=["--no-store"])
    assert proxy.events[0]["store"] is None
    assert one_delivery(proxy, allowed)["status"] == 200  # forwarded and logged
    assert proxy.stop() == 0
    assert not store_path(proxy.data_dir).exists()
    assert main(["logs", "--data-dir", str(proxy.data_dir)]) != 0  # nothing to read, and says so
    assert "deliveries.db" in capsys.readouterr().err


def test_a_locked_store_does_not_stop_forwarding(
    start_proxy: ProxyLauncher, plain_twins: Twins
) -> None:
    allowed, _ = plain_twins
    proxy = start_proxy(PLAIN)
    data = proxy.data_dir
    first = one_delivery(proxy, allowed)["request_id"]
    wait_rows(data, first)
    locker = sqlite3.connect(store_path(data), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        mark = proxy.mark()
        started = time.monotonic()
        for _ in range(3):
            one_delivery(proxy, allowed)
        assert time.monotonic() - started < 2.0  # never waited for the store (busy 2s)
        error = proxy.wait_for(lambda e: e.get("event") == "store_error", start=mark)
        assert "locked" in error["error"]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    later = one_delivery(proxy, allowed)["request_id"]
    wait_rows(data, later)  # the writer recovered
