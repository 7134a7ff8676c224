"""Hot reload through the real proxy: file edits and SIGHUP swap the policy without dropping a
request in flight; a broken policy is refused and the old one keeps serving; what was derived
from the policy at start-up (body cap, resolver, CA bundle, tunnels) follows the new one.

No sleeps as synchronisation: every wait is on a log event (``policy_reloaded``, ...).
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
import trustme

from tests.support.dnsserver import TestDnsServer
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import Receiver, Twins, start_receiver, tls_server_context
from tests.support.reloads import rejected, reloaded, write

pytestmark = pytest.mark.integration

ALLOW = """\
version: 1
unsafe: true
defaults:
  network: {{allow: [127.0.0.2/32], ports: ["1-65535"]}}
destinations:
  - hosts: [a.reload.test]
{extra}"""
DENY_A = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [a.reload.test]
    action: deny
"""
NAMES = ["a.reload.test", "b.reload.test", "tls.reload.test"]


def post(proc: ProxyProcess, url: str, body: bytes = b"{}") -> requests.Response:
    return requests.post(url, data=body, proxies={"http": proc.url}, timeout=15)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def started(
    start_proxy: ProxyLauncher, text: str, *, dns: bool = True
) -> tuple[ProxyProcess, Path]:
    """A proxy on this policy (edits are seen within 100 ms), and its policy file."""
    proc = start_proxy(text, names=NAMES, dns=dns)
    assert proc.policy is not None
    return proc, proc.policy


def test_an_edit_swaps_the_policy_and_the_request_in_flight_finishes(
    start_proxy: ProxyLauncher, receiver: Receiver
) -> None:
    proc, policy = started(start_proxy, ALLOW.format(extra=""))
    receiver.gate = threading.Event()
    url = f"http://a.reload.test:{receiver.port}/slow"
    result: dict[str, requests.Response] = {}
    sender = threading.Thread(target=lambda: result.setdefault("r", post(proc, url)))
    sender.start()
    try:
        assert receiver.arrived.wait(timeout=10)
        mark = proc.mark()
        write(policy, DENY_A)
        event = reloaded(proc, mark, "file-changed")
        assert event["files"] == [str(policy)] and event["rules"] == 1
        # New requests follow the new rules at once...
        denied = post(proc, f"http://a.reload.test:{receiver.port}/new")
        assert denied.status_code == 403
        assert denied.headers["X-Hookwall-Reason"] == "host-denied"
    finally:
        receiver.gate.set()
    # ...while the one in flight finishes under the policy it started with.
    sender.join(timeout=15)
    assert result["r"].status_code == 200
    first = proc.exchange(result["r"].headers["X-Hookwall-Request-Id"])
    assert first["decision"] == "allow" and first["rule"] == "a.reload.test"
    assert len(receiver.requests) == 1


def test_an_in_place_edit_is_seen_too(start_proxy: ProxyLauncher, receiver: Receiver) -> None:
    proc, policy = started(start_proxy, DENY_A)
    assert post(proc, f"http://a.reload.test:{receiver.port}/").status_code == 403
    mark = proc.mark()
    policy.write_text(ALLOW.format(extra=""))  # truncate and write, like most editors' save
    reloaded(proc, mark)
    assert post(proc, f"http://a.reload.test:{receiver.port}/").status_code == 200


def test_a_broken_policy_is_rejected_with_every_error_and_the_old_one_keeps_serving(
    start_proxy: ProxyLauncher, receiver: Receiver
) -> None:
    proc, policy = started(start_proxy, ALLOW.format(extra=""))
    mark = proc.mark()
    write(
        policy,
        "version: 1\ndefaults:\n  network:\n    allow: [10.0.0.0/33]\n"
        "destinations:\n  - hosts: [a.reload.test]\n    colour: blue\n",
    )
    event = rejected(proc, mark)
    assert event["level"] == "error" and event["error_count"] == len(event["errors"]) == 2
    assert event["errors"][0].startswith(f"{policy}:4:")
    assert event["errors"][1].startswith(f"{policy}:7:")
    assert event["in_force"] == [str(policy)]
    assert post(proc, f"http://a.reload.test:{receiver.port}/").status_code == 200
    assert not [e for e in proc.events[mark:] if e.get("event") == "policy_reloaded"]
    # Fixing the file is picked up like any other edit.
    mark = proc.mark()
    write(policy, DENY_A)
    reloaded(proc, mark)
    assert post(proc, f"http://a.reload.test:{receiver.port}/").status_code == 403


def test_a_reload_that_drops_the_special_purpose_set_is_refused(
    start_proxy: ProxyLauncher, plain_twins: Twins
) -> None:
    allowed, forbidden = plain_twins
    proc, policy = started(start_proxy, ALLOW.format(extra=""))
    mark = proc.mark()
    write(policy, 'version: 1\ndefaults:\n  network: {deny: [], ports: ["1-65535"]}\n')
    event = rejected(proc, mark)
    assert "special-purpose" in event["errors"][0] and "unsafe: true" in event["errors"][0]
    # The old policy keeps serving: loopback is still refused, the exception still allowed.
    r = post(proc, f"http://127.0.0.1:{forbidden.port}/")
    assert (r.status_code, r.headers["X-Hookwall-Reason"]) == (403, "address-blocked")
    assert forbidden.connections == 0
    assert post(proc, f"http://127.0.0.2:{allowed.port}/").status_code == 200


def test_sighup_reloads_at_once_including_secret_files(
    start_proxy: ProxyLauncher, receiver: Receiver, tmp_path: Path
) -> None:
    secret = tmp_path / "gh-secret"
    secret.write_text("first-secret-for-the-reload-test")
    text = ALLOW.format(extra=f"    signing: {{scheme: github, secrets: ['file:{secret}']}}\n")
    proc, _ = started(start_proxy, text)
    url = f"http://a.reload.test:{receiver.port}/"
    before = proc.exchange(post(proc, url).headers["X-Hookwall-Request-Id"])["key_ids"]
    # The watcher looks at policy files only; a rotated secret file needs SIGHUP.
    secret.write_text("second-secret-for-the-reload-test")
    mark = proc.mark()
    proc.proc.send_signal(signal.SIGHUP)
    event = reloaded(proc, mark, "sighup")
    assert event["changed"] == []
    after = proc.exchange(post(proc, url).headers["X-Hookwall-Request-Id"])["key_ids"]
    assert before != after and len(after) == 1


def test_the_body_cap_follows_the_policy(start_proxy: ProxyLauncher, receiver: Receiver) -> None:
    proc, policy = started(start_proxy, ALLOW.format(extra=""))
    url = f"http://a.reload.test:{receiver.port}/"
    body = b"x" * (2 * 1024 * 1024)
    assert post(proc, url, body).status_code == 413
    mark = proc.mark()
    write(policy, ALLOW.format(extra="    max_request_body: 4MiB\n"))
    assert "body_size_limit" in reloaded(proc, mark)["changed"]
    # mitmproxy's own buffering ceiling was raised with it: 2 MiB now goes through.
    assert post(proc, url, body).status_code == 200
    assert receiver.requests[-1].body == body


def test_a_new_resolver_when_dns_settings_change(
    start_proxy: ProxyLauncher, receiver: Receiver, dns_server: TestDnsServer
) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    dns_part = "dns: {{servers: ['{server}'], timeout: 500ms}}\n"
    text = dns_part.format(server=dead) + ALLOW.format(extra="")
    proc, policy = started(start_proxy, text, dns=False)  # the policy's servers count
    url = f"http://a.reload.test:{receiver.port}/"
    r = post(proc, url)
    assert (r.status_code, r.headers["X-Hookwall-Reason"]) == (403, "dns-failed")
    mark = proc.mark()
    write(policy, dns_part.format(server=dns_server.spec) + ALLOW.format(extra=""))
    assert "dns" in reloaded(proc, mark)["changed"]
    assert post(proc, url).status_code == 200


@pytest.fixture
def tls_receiver(receiver_ca: trustme.CA) -> Iterator[Receiver]:
    r = start_receiver("127.0.0.2", ssl_context=tls_server_context(receiver_ca, "tls.reload.test"))
    yield r
    r.stop()


def test_the_upstream_ca_bundle_follows_the_policy(
    start_proxy: ProxyLauncher, tls_receiver: Receiver, receiver_ca_file: Path
) -> None:
    proc, policy = started(start_proxy, ALLOW.format(extra=""))
    url = f"https://tls.reload.test:{tls_receiver.port}/"

    def send() -> httpx.Response:
        with httpx.Client(proxy=proc.url, verify=trusting(proc.ca_cert), timeout=15) as client:
            return client.post(url, content=b"{}")

    r = send()
    assert (r.status_code, r.headers["X-Hookwall-Reason"]) == (502, "tls-failed")
    mark = proc.mark()
    extra = "defaults:\n  network: {allow: [127.0.0.2/32], ports: ['1-65535']}\n"
    write(policy, f"version: 1\nunsafe: true\n{extra}  ca_bundle: {receiver_ca_file}\n")
    assert "ca_bundle" in reloaded(proc, mark)["changed"]
    assert send().status_code == 200


def test_a_tunnel_opened_before_a_reload_follows_the_new_policy(
    start_proxy: ProxyLauncher, tls_receiver: Receiver, receiver_ca_file: Path
) -> None:
    head = (
        "version: 1\nunsafe: true\n"
        "defaults:\n  network: {allow: [127.0.0.2/32], ports: ['1-65535']}\n"
        f"  ca_bundle: {receiver_ca_file}\ndestinations:\n  - hosts: [tls.reload.test]\n"
    )
    proc, policy = started(start_proxy, head)
    url = f"https://tls.reload.test:{tls_receiver.port}/"
    with httpx.Client(proxy=proc.url, verify=trusting(proc.ca_cert), timeout=15) as client:
        assert client.post(url, content=b"1").status_code == 200
        # A reload that still allows the tunnel's address: the tunnel is adopted.
        mark = proc.mark()
        write(policy, head + "    limits: {concurrency: 3}\n")
        reloaded(proc, mark)
        second = client.post(url, content=b"2")
        assert second.status_code == 200
        assert tls_receiver.connections == 1  # the same tunnel and upstream connection
        # A reload that denies the host: the next request in the same tunnel is refused.
        mark = proc.mark()
        write(policy, head + "    action: deny\n")
        reloaded(proc, mark)
        third = client.post(url, content=b"3")
        assert (third.status_code, third.headers["X-Hookwall-Reason"]) == (403, "host-denied")
        assert third.headers.get("Connection") == "close"
    assert [seen.body for seen in tls_receiver.requests] == [b"1", b"2"]


def test_explain_and_check_are_unaffected(
    tmp_path: Path, dns_server: TestDnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from hookwall.cli.main import main

    policy = tmp_path / "p.yaml"
    write(policy, DENY_A)
    assert main(["check", str(policy)]) == 0
    assert "policy OK" in capsys.readouterr().out
    code = main(["explain", "http://a.reload.test/", "--policy", str(policy), "--dns-server",
                 dns_server.spec])  # fmt: skip
    assert code == 1 and "DENY (host-denied)" in capsys.readouterr().out
