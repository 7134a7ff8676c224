"""``hookwall run --workers N``: N proxy processes on one port under one supervisor.

Through the real CLI: both workers serve (counted by the ``pid`` every worker's log line
carries), each enforces its share of a cap, redirect hops may land on either worker, a
crashed worker is restarted, SIGTERM drains every worker and exits 0. Plus the SO_REUSEPORT
hook point in mitmproxy (pinned 12.3.1) and the share arithmetic.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from mitmproxy.proxy import mode_servers
from prometheus_client.parser import text_string_to_metric_families

from hookwall.limits import DestinationLimiter, LimitConfig, Rejected
from hookwall.limits.share import SharedByWorkers, worker_share
from hookwall.mitm import listener
from tests.support.adversary import Adversary
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import HOOKWALL, Event, ProxyProcess
from tests.support.receivers import Receiver, start_receiver
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration
# The module whose ``asyncio`` name the SO_REUSEPORT hook replaces (not an exported attribute).
PATCHED: Any = mode_servers

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
destinations:
  - hosts: [capped.test]
    limits: {concurrency: 2, queue: 50, queue_timeout: 10s}
  - hosts: [hops.test]
    redirects: {mode: follow, scope: same_host, max_hops: 3}
"""


NAMES = ["capped.test", "ok.test", "hops.test"]


def started_workers(proc: ProxyProcess, count: int, start: int = 0) -> list[Event]:
    """Wait for ``count`` proxy_started events (one per worker) from index ``start`` on."""
    proc.wait_until(
        lambda: len(proc.events_named("proxy_started", start)) >= count,
        30,
        f"{count} workers started",
    )
    return proc.events_named("proxy_started", start)


@pytest.fixture(scope="module")
def hop_receiver() -> Iterator[Receiver]:
    receiver = start_receiver("127.0.0.2")
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory, start_module_proxy: ProxyLauncher
) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("workers-tmp")  # where the workers' admin sockets go
    proc = start_module_proxy(POLICY, names=NAMES, workers=2, env={"TMPDIR": str(tmp)})
    (sockets,) = tmp.glob("hookwall-admin-*")  # one private directory, for the supervisor
    assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
    assert sorted(p.name for p in sockets.iterdir()) == ["worker-1.sock", "worker-2.sock"]
    yield proc
    assert proc.stop() == 0
    assert list(tmp.iterdir()) == []  # the sockets and their directory go with the supervisor


def send(proxy: ProxyProcess, url: str, timeout: float = 20) -> requests.Response:
    # A new connection per request: the kernel picks a worker for each.
    return requests.post(url, data=b"{}", proxies={"http": proxy.url}, timeout=timeout)


def exchange_events(proc: ProxyProcess, start: int) -> list[Event]:
    return proc.events_named("exchange", start)


def worker_pids(proc: ProxyProcess, start: int = 0) -> set[int]:
    return {e["pid"] for e in proc.events[start:] if e.get("event") == "proxy_started"}


def test_the_workers_listen_on_one_port_and_both_serve(
    workers: ProxyProcess, adversary: Adversary
) -> None:
    started = started_workers(workers, 2)
    assert {tuple(e["listen"]) for e in started} == {(f"127.0.0.1:{workers.port}",)}
    assert sorted(e["worker"] for e in started) == [1, 2]
    supervisor = workers.wait_for(lambda e: e.get("event") == "supervisor_started")
    assert supervisor["pid"] == workers.proc.pid and supervisor["workers"] == 2
    assert "divided by 2" in supervisor["limits"]
    assert len(worker_pids(workers)) == 2
    mark = workers.mark()
    for _ in range(40):
        assert send(workers, f"http://ok.test:{adversary.port}/ok").status_code == 200
    # The lines reach us through the supervisor's pipe: wait for all 40.
    workers.wait_until(lambda: len(exchange_events(workers, mark)) >= 40, what="40 exchanges")
    served = {e["pid"] for e in exchange_events(workers, mark)}
    assert served == worker_pids(workers)  # both workers took connections


def test_each_worker_enforces_its_share_of_the_cap(
    workers: ProxyProcess, adversary: Adversary
) -> None:
    """concurrency 2 with 2 workers: 1 each, so the receiver never sees more than 2."""
    adversary.gate.clear()
    adversary.max_active = 0
    url = f"http://capped.test:{adversary.port}/gate"
    try:
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(send, workers, url) for _ in range(16)]
            wait_until(lambda: adversary.active == 2)  # one per worker (16 connections: both)
            time.sleep(0.3)
            assert adversary.max_active == 2
            adversary.gate.set()
            assert [f.result().status_code for f in futures] == [200] * 16
    finally:
        adversary.gate.set()
    assert adversary.max_active == 2


def test_redirect_hops_stay_on_the_worker_of_their_delivery(
    workers: ProxyProcess, hop_receiver: Receiver
) -> None:
    """Hops go through the worker's own internal listener (open while it drains), so a chain
    never depends on another worker being up."""
    mark = workers.mark()
    for _ in range(6):
        r = send(workers, f"http://hops.test:{hop_receiver.port}/hops?n=3")
        assert r.status_code == 200, r.text
    # The lines reach us through each worker's stdout and a reader thread: wait for all 24.
    workers.wait_until(lambda: len(exchange_events(workers, mark)) >= 24, what="24 exchanges")
    exchanges = exchange_events(workers, mark)
    firsts = [e for e in exchanges if e.get("hop") == 0]
    assert len(firsts) == 6
    for first in firsts:
        chain = [e for e in exchanges if e["request_id"] == first["request_id"]]
        assert sorted(e["hop"] for e in chain) == [0, 1, 2, 3]  # judged as hops, not strangers
        assert len({e["pid"] for e in chain}) == 1


def metric_total(proc: ProxyProcess, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples with these labels in the supervisor's /metrics."""
    assert proc.admin_url is not None
    text = requests.get(proc.admin_url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_and_readyz_cover_every_worker(workers: ProxyProcess, adversary: Adversary) -> None:
    assert workers.admin_url is not None
    ready = requests.get(workers.admin_url + "/readyz", timeout=10)
    assert (ready.status_code, ready.text) == (200, "ready (2 workers)\n")
    assert metric_total(workers, "hookwall_worker_up") == 2
    assert metric_total(workers, "hookwall_workers") == 2
    before = metric_total(workers, "hookwall_requests_total", decision="allow")
    mark = workers.mark()
    for _ in range(40):
        assert send(workers, f"http://ok.test:{adversary.port}/ok").status_code == 200
    workers.wait_until(lambda: len(exchange_events(workers, mark)) >= 40, what="40 exchanges")
    assert {e["pid"] for e in exchange_events(workers, mark)} == worker_pids(workers)
    # Every delivery counted once, whichever worker served it (each counts before it logs).
    after = metric_total(workers, "hookwall_requests_total", decision="allow")
    assert after - before == 40
    assert metric_total(workers, "hookwall_policy_rules") == 2  # the policy's, not summed
    count = metric_total(workers, "hookwall_exchange_phase_seconds_count", phase="duration")
    assert count >= 40


def test_a_worker_that_does_not_answer_makes_readyz_fail(workers: ProxyProcess) -> None:
    assert workers.admin_url is not None
    victim = max(worker_pids(workers))
    (index,) = {e["worker"] for e in workers.events if e.get("pid") == victim}
    os.kill(victim, signal.SIGSTOP)  # busy or hung: alive, but not answering
    try:
        ready = requests.get(workers.admin_url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.text == f"not ready: worker {index}: not answering\n"
        assert metric_total(workers, "hookwall_worker_up", worker=str(index)) == 0
        assert metric_total(workers, "hookwall_worker_up") == 1
    finally:
        os.kill(victim, signal.SIGCONT)
    assert requests.get(workers.admin_url + "/readyz", timeout=10).status_code == 200


def test_a_crashed_worker_is_restarted(workers: ProxyProcess, adversary: Adversary) -> None:
    victim = max(worker_pids(workers))
    mark = workers.mark()
    os.kill(victim, signal.SIGKILL)
    exited = workers.wait_for(lambda e: e.get("event") == "worker_exited", start=mark)
    assert exited["pid"] == victim and exited["signal"] == "SIGKILL"
    assert exited["restart_in_s"] >= 0
    restarted = workers.wait_for(lambda e: e.get("event") == "worker_started", start=mark)
    assert restarted["worker"] == exited["worker"] and restarted["restarts"] == 1
    (again,) = started_workers(workers, 1, start=mark)
    assert again["pid"] == restarted["pid"] != victim
    assert again["listen"] == [f"127.0.0.1:{workers.port}"]
    # The restarted worker answers its supervisor: every worker is ready again.
    assert workers.admin_url is not None
    assert requests.get(workers.admin_url + "/readyz", timeout=10).status_code == 200
    for _ in range(10):
        assert send(workers, f"http://ok.test:{adversary.port}/ok").status_code == 200


def test_sigterm_drains_every_worker_and_exits_0(
    start_proxy: ProxyLauncher, adversary: Adversary
) -> None:
    proc = start_proxy(POLICY, names=NAMES, workers=2)
    adversary.gate.clear()
    result: dict[str, requests.Response] = {}
    sender = threading.Thread(
        target=lambda: result.update(r=send(proc, f"http://ok.test:{adversary.port}/gate"))
    )
    try:
        active = adversary.active
        sender.start()
        wait_until(lambda: adversary.active == active + 1)
        mark = proc.mark()
        proc.terminate()  # SIGTERM
        proc.wait_for(lambda e: e.get("event") == "supervisor_stopping", start=mark)
        drains = [proc.wait_for(lambda e: e.get("event") == "proxy_draining", start=mark)]
        assert drains
        time.sleep(0.3)
        assert proc.proc.poll() is None  # still draining the delivery in flight
        adversary.gate.set()
        sender.join(timeout=15)
        assert result["r"].status_code == 200
        assert proc.proc.wait(timeout=20) == 0
        proc.wait_for(lambda e: e.get("event") == "supervisor_stopped", start=mark)  # all read
        exits = [e for e in proc.events[mark:] if e.get("event") == "worker_exited"]
        assert sorted(e["exit_code"] for e in exits) == [0, 0]
        assert proc.events[-1]["event"] == "supervisor_stopped"
    finally:
        adversary.gate.set()
        proc.stop()


def test_a_non_loopback_listen_without_senders_is_still_refused(
    tmp_path: Path,
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    result = subprocess.run(
        [str(HOOKWALL), "run", "--policy", str(policy_file), "--listen", "0.0.0.0:0",
         "--workers", "2", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "senders" in result.stderr
    assert "worker_started" not in result.stdout


@pytest.mark.parametrize("value", ["0", "-1", "two", "1000"])
def test_workers_must_be_a_sensible_number(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hookwall", "run", "--workers", value],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "--workers" in result.stderr


# -- the SO_REUSEPORT hook point --------------------------------------------------------------


def test_mitmproxy_opens_its_listener_where_the_hook_expects_it() -> None:
    """mitmproxy 12.3.1: AsyncioServerInstance.listen calls asyncio.start_server via the
    module's ``asyncio`` name. If that moves, workers would fail to share the port."""
    source = inspect.getsource(mode_servers.AsyncioServerInstance.listen)
    assert "asyncio.start_server(" in source
    assert PATCHED.asyncio.__name__ == "asyncio"


def test_the_hook_adds_reuse_port_and_two_servers_share_a_reserved_port() -> None:
    original = PATCHED.asyncio
    try:
        listener.install()
        assert listener.installed()
        reserved = listener.reserve("127.0.0.1", 0)
        port = reserved[0].getsockname()[1]

        async def scenario() -> set[str]:
            seen: set[str] = set()

            def handler(
                name: str,
            ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
                async def handle(
                    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                ) -> None:
                    seen.add(name)
                    writer.close()

                return handle

            servers = [
                await PATCHED.asyncio.start_server(handler(n), "127.0.0.1", port)
                for n in ("a", "b")
            ]
            for _ in range(64):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                await reader.read()
                writer.close()
            for server in servers:
                server.close()
            return seen

        assert asyncio.run(scenario()) == {"a", "b"}
        for sock in reserved:
            sock.close()
    finally:
        PATCHED.asyncio = original


# -- each worker's share of a cap -------------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "rate", "burst", "workers", "expected"),
    [
        (8, None, None, 2, (4, None, None)),
        (5, None, None, 2, (2, None, None)),  # rounded down: never above the cap...
        (1, None, None, 4, (1, None, None)),  # ...but at least 1 each
        (8, 10.0, None, 2, (4, 5.0, 5)),  # burst defaults to ceil(rate) = 10, halved
        (8, 3.0, 1, 2, (4, 1.5, 1)),
        (8, 10.0, 7, 1, (8, 10.0, 7)),
    ],
)
def test_worker_share(
    concurrency: int,
    rate: float | None,
    burst: int | None,
    workers: int,
    expected: tuple[int, float | None, int | None],
) -> None:
    config = LimitConfig(concurrency=concurrency, rate=rate, burst=burst, queue=33)
    shared = worker_share(config, workers)
    assert (shared.concurrency, shared.rate, shared.burst) == expected
    assert shared.queue == 33  # the queue bounds each process's memory: not divided


def test_shared_by_workers_applies_the_share() -> None:
    async def scenario() -> None:
        limiter = SharedByWorkers(DestinationLimiter(), workers=2)
        config = LimitConfig(concurrency=4, queue=0)
        slots = [await limiter.acquire("k", config) for _ in range(2)]
        with pytest.raises(Rejected):
            await limiter.acquire("k", config)
        for slot in slots:
            slot.release()

    asyncio.run(scenario())
