"""The proxy process as an operator runs it: default policy, graceful stop, unsafe options."""

from __future__ import annotations

import asyncio
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
from tests.support.launcher import ProxyLauncher
from tests.support.receivers import Receiver

pytestmark = pytest.mark.integration

OPEN = """\
version: 1
unsafe: true
defaults:
  network:
    allow: [127.0.0.2/32]
    ports: ['1-65535']
"""


def test_runs_on_the_builtin_default_policy(start_proxy: ProxyLauncher) -> None:
    proc = start_proxy(None)
    started = proc.events[0]
    assert started["policy"][0].endswith("policies/default.yaml")
    assert Path(started["ca_cert"]).is_file()
    assert started["store"] == str(proc.data_dir / "deliveries.db")
    proxies = {"http": proc.url}
    r = requests.post("http://localhost:3000/hook", data=b"{}", proxies=proxies, timeout=10)
    assert r.status_code == 403
    assert r.headers["X-Hookwall-Reason"] == "address-blocked"
    event = proc.exchange(r.json()["request_id"])
    assert event["url"] == "http://localhost:3000/hook"
    assert event["decision"] == "deny"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_runs_on_either_event_loop(
    start_proxy: ProxyLauncher, receiver: Receiver, loop: str
) -> None:
    """The standard library's loop is the default; uvloop is the documented option."""
    proc = start_proxy(OPEN, args=[] if loop == "asyncio" else ["--event-loop", loop])
    assert proc.events[0]["event_loop"] == loop
    proxies = {"http": proc.url}
    ok = requests.post(
        f"http://127.0.0.2:{receiver.port}/hook", data=b"{}", proxies=proxies, timeout=10
    )
    assert ok.status_code == 200
    denied = requests.post("http://127.0.0.1:1/hook", data=b"{}", proxies=proxies, timeout=10)
    assert denied.headers["X-Hookwall-Reason"] == "address-blocked"


def test_sigterm_lets_the_request_in_flight_finish(
    start_proxy: ProxyLauncher, receiver: Receiver
) -> None:
    receiver.gate = threading.Event()
    proc = start_proxy(OPEN)
    result: dict[str, requests.Response] = {}

    def send() -> None:
        url = f"http://127.0.0.2:{receiver.port}/slow"
        result["response"] = requests.post(url, data=b"{}", proxies={"http": proc.url}, timeout=30)

    sender = threading.Thread(target=send)
    sender.start()
    assert receiver.arrived.wait(timeout=10)
    mark = proc.mark()
    proc.terminate()  # SIGTERM
    proc.wait_for(lambda e: e.get("event") == "proxy_draining", start=mark)
    # The listener closes at once: new senders are turned away...
    with pytest.raises(OSError):
        socket.create_connection((proc.host, proc.port), timeout=5).close()
    # ...while the delivery already in flight completes.
    receiver.gate.set()
    sender.join(timeout=15)
    assert result["response"].status_code == 200
    assert proc.proc.wait(timeout=15) == 0


@pytest.mark.parametrize("option", sorted(FORBIDDEN_OPTIONS))
def test_unsafe_mitmproxy_options_are_refused(option: str) -> None:
    async def build() -> None:
        opts = options.Options()
        runtime = Runtime(load_default_policy(), Resolver([("127.0.0.1", 53)]))
        HookwallMaster(opts, runtime)
        with pytest.raises(exceptions.OptionsError, match=option):
            opts.update(**{option: True})  # type: ignore[no-untyped-call]  # unannotated

    asyncio.run(build())
