"""The admin listener of the real proxy: /healthz, /readyz (503 while draining), /metrics
(Prometheus text; counters move with deliveries; bearer token when configured), and its
command-line switch."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import HOOKWALL, ProxyProcess
from tests.support.receivers import Receiver

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [m.admin.test]
    limits: {concurrency: 1}
"""
NAMES = ["m.admin.test"]
TOKEN = "admin-token-for-tests-4f9a2c"


def get(proc: ProxyProcess, path: str, **headers: str) -> requests.Response:
    assert proc.admin_url is not None
    return requests.get(proc.admin_url + path, headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_health_readiness_and_drain(start_proxy: ProxyLauncher, receiver: Receiver) -> None:
    proc = start_proxy(POLICY, names=NAMES)
    assert proc.admin_url is not None
    receiver.gate = threading.Event()
    result: dict[str, requests.Response] = {}
    url = f"http://m.admin.test:{receiver.port}/slow"

    def send() -> None:
        result["r"] = requests.post(url, data=b"{}", proxies={"http": proc.url}, timeout=30)

    sender = threading.Thread(target=send)
    assert (get(proc, "/healthz").status_code, get(proc, "/readyz").status_code) == (200, 200)
    assert get(proc, "/readyz").text == "ready\n"
    assert requests.head(proc.admin_url + "/healthz", timeout=5).status_code == 200
    assert requests.post(proc.admin_url + "/healthz", timeout=5).status_code == 405
    assert get(proc, "/nope").status_code == 404
    sender.start()
    assert receiver.arrived.wait(timeout=10)
    mark = proc.mark()
    proc.terminate()  # SIGTERM
    proc.wait_for(lambda e: e.get("event") == "proxy_draining", start=mark)
    # Draining: not ready (load balancers stop sending), still alive (no restart).
    ready = get(proc, "/readyz")
    assert (ready.status_code, ready.text) == (503, "draining\n")
    assert get(proc, "/healthz").status_code == 200
    receiver.gate.set()
    sender.join(timeout=15)
    assert result["r"].status_code == 200
    assert proc.proc.wait(timeout=15) == 0


def test_metrics_move_with_deliveries_and_reloads(
    start_proxy: ProxyLauncher, receiver: Receiver
) -> None:
    proc = start_proxy(POLICY, names=NAMES)  # edits are seen within 100 ms (--policy-poll)
    assert proc.policy is not None
    policy = proc.policy
    first = get(proc, "/metrics")
    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = first.text
    assert value(text, "hookwall_build_info", **_build_labels(text)) == 1
    assert value(text, "hookwall_policy_rules") == 1
    assert value(text, "hookwall_policy_loaded_timestamp_seconds") > 0
    proxies = {"http": proc.url}
    denied = requests.post("http://localhost:9/", data=b"{}", proxies=proxies, timeout=10)
    assert denied.status_code == 403
    url = f"http://m.admin.test:{receiver.port}/"
    for _ in range(2):
        assert requests.post(url, data=b"{}", proxies=proxies, timeout=10).status_code == 200
    proc.exchange(request_id=denied.headers["X-Hookwall-Request-Id"])
    text = get(proc, "/metrics").text
    deny = {"decision": "deny", "reason": "address-blocked", "status_class": "4xx"}
    allow = {"decision": "allow", "reason": "none", "status_class": "2xx"}
    assert value(text, "hookwall_requests_total", **deny) == 1
    assert value(text, "hookwall_requests_total", **allow) == 2
    phase = {"phase": "duration", "decision": "allow"}
    assert value(text, "hookwall_exchange_phase_seconds_count", **phase) == 2
    assert value(text, "hookwall_exchange_phase_seconds_count", phase="ttfb", decision="allow")
    waits = "hookwall_queue_wait_seconds_count"
    assert value(text, waits, destination=f"m.admin.test:{receiver.port}") == 2
    assert value(text, "hookwall_circuits", state="closed") == 1
    assert value(text, "hookwall_client_connections_total") >= 3
    # A rejected reload shows in the metrics; the policy in force stays.
    mark = proc.mark()
    policy.write_text("version: 1\ndefaults: {network: {ports: [0]}}\n")
    proc.wait_for(lambda e: e.get("event") == "policy_rejected", start=mark, timeout=15)
    text = get(proc, "/metrics").text
    assert value(text, "hookwall_policy_reloads_total", result="rejected") == 1
    assert value(text, "hookwall_policy_last_reload_ok") == 0
    mark = proc.mark()
    policy.write_text(POLICY + "  - hosts: [n.admin.test]\n")
    proc.wait_for(lambda e: e.get("event") == "policy_reloaded", start=mark, timeout=15)
    text = get(proc, "/metrics").text
    assert value(text, "hookwall_policy_reloads_total", result="ok") == 1
    assert value(text, "hookwall_policy_rules") == 2


def _build_labels(text: str) -> dict[str, str]:
    (labels,) = [dict(k[1]) for k in samples(text) if k[0] == "hookwall_build_info"]
    assert set(labels) == {"version", "mitmproxy_version", "python"}
    return labels


def test_metrics_need_the_bearer_token_when_one_is_set(start_proxy: ProxyLauncher) -> None:
    proc = start_proxy(POLICY, names=NAMES, env={"HOOKWALL_ADMIN_TOKEN": TOKEN})
    missing = get(proc, "/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert get(proc, "/metrics", Authorization="Bearer wrong-token").status_code == 401
    assert get(proc, "/metrics", Authorization=f"Basic {TOKEN}").status_code == 401
    ok = get(proc, "/metrics", Authorization=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and "hookwall_requests_total" in ok.text
    # Probes stay open.
    assert get(proc, "/healthz").status_code == get(proc, "/readyz").status_code == 200
    assert TOKEN not in "".join(str(e) for e in proc.events)


def test_admin_listen_off_and_a_taken_port(start_proxy: ProxyLauncher, tmp_path: Path) -> None:
    proc = start_proxy(POLICY, names=NAMES, args=["--admin-listen", "off"])
    assert proc.events[0]["admin"] is None and proc.admin_url is None
    assert proc.stop() == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(HOOKWALL), "run", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
             "--admin-listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"admin endpoint on 127.0.0.1:{port}" in result.stderr
    assert "proxy_started" not in result.stdout


def test_run_help_lists_admin_listen(run_help: str) -> None:
    assert "--admin-listen" in run_help and "HOOKWALL_ADMIN_TOKEN" in run_help
