"""The proxy process as an operator runs it: default policy, graceful stop, unsafe options."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from pathlib import Path

import pytest
import requests
from mitmproxy import exceptions, options

from hookwall.app.master import HookwallMaster
from hookwall.destinations.resolver import Resolver
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.safety import FORBIDDEN_OPTIONS
from hookwall.policy import load_default_policy
from tests.support.dnsserver import TestDnsServer
from tests.support.proxyproc import ProxyProcess
from tests.support.receivers import start_receiver

pytestmark = pytest.mark.integration


def test_runs_on_the_builtin_default_policy(tmp_path: Path, dns_server: TestDnsServer) -> None:
    proc = ProxyProcess(None, tmp_path / "data", dns=[dns_server.spec])
    try:
        started = proc.events[0]
        assert started["policy"][0].endswith("policies/default.yaml")
        assert Path(started["ca_cert"]).is_file()
        assert started["store"] == str(tmp_path / "data" / "deliveries.db")
        proxies = {"http": proc.url}
        r = requests.post("http://localhost:3000/hook", data=b"{}", proxies=proxies, timeout=10)
        assert r.status_code == 403
        assert r.headers["X-Hookwall-Reason"] == "address-blocked"
        event = proc.exchange(r.json()["request_id"])
        assert event["url"] == "http://localhost:3000/hook"
        assert event["decision"] == "deny"
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_runs_on_either_event_loop(tmp_path: Path, dns_server: TestDnsServer, loop: str) -> None:
    """The standard library's loop is the default; uvloop is the documented option."""
    receiver = start_receiver("127.0.0.2")
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nunsafe: true\n"
        "defaults:\n  network:\n    allow: [127.0.0.2/32]\n    ports: ['1-65535']\n"
    )
    extra = [] if loop == "asyncio" else ["--event-loop", loop]
    proc = ProxyProcess(policy, tmp_path / "data", dns=[dns_server.spec], extra_args=extra)
    try:
        assert proc.events[0]["event_loop"] == loop
        proxies = {"http": proc.url}
        ok = requests.post(f"http://127.0.0.2:{receiver.port}/hook", data=b"{}", proxies=proxies)
        assert ok.status_code == 200
        denied = requests.post("http://127.0.0.1:1/hook", data=b"{}", proxies=proxies, timeout=10)
        assert denied.headers["X-Hookwall-Reason"] == "address-blocked"
    finally:
        assert proc.stop() == 0
        receiver.stop()


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path, dns_server: TestDnsServer):
    receiver = start_receiver("127.0.0.2")
    receiver.gate = threading.Event()
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nunsafe: true\n"
        "defaults:\n  network:\n    allow: [127.0.0.2/32]\n    ports: ['1-65535']\n"
    )
    proc = ProxyProcess(policy, tmp_path / "data", dns=[dns_server.spec])
    result: dict[str, object] = {}

    def send() -> None:
        url = f"http://127.0.0.2:{receiver.port}/slow"
        result["response"] = requests.post(url, data=b"{}", proxies={"http": proc.url}, timeout=30)

    sender = threading.Thread(target=send)
    try:
        sender.start()
        assert receiver.arrived.wait(timeout=10)
        mark = proc.mark()
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_for(lambda e: e.get("event") == "proxy_draining", start=mark)
        # The listener closes at once: new senders are turned away...
        with pytest.raises(OSError):
            socket.create_connection((proc.host, proc.port), timeout=5).close()
        # ...while the delivery already in flight completes.
        receiver.gate.set()
        sender.join(timeout=15)
        assert result["response"].status_code == 200  # type: ignore[attr-defined]
        assert proc.proc.wait(timeout=15) == 0
    finally:
        receiver.gate.set()
        proc.stop()
        receiver.stop()


@pytest.mark.parametrize("option", sorted(FORBIDDEN_OPTIONS))
def test_unsafe_mitmproxy_options_are_refused(option: str) -> None:
    async def build() -> None:
        opts = options.Options()
        runtime = Runtime(load_default_policy(), Resolver([("127.0.0.1", 53)]))
        HookwallMaster(opts, runtime)
        with pytest.raises(exceptions.OptionsError, match=option):
            opts.update(**{option: True})

    asyncio.run(build())
