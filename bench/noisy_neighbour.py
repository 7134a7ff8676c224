"""Does a saturated slow receiver hurt deliveries to a healthy one behind the same proxy?

Runs the real proxy, a healthy receiver and a slow one (which never answers until the end),
all on loopback, and prints side by side, in one run, the latency of deliveries to the
healthy receiver with the slow one idle and with it saturated (its concurrency cap full and
a deep queue waiting). The ratio should be close to 1.

    .venv/bin/python -m bench.noisy_neighbour [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests

from tests.support.adversary import Adversary
from tests.support.dnsserver import TestDnsServer
from tests.support.proxyproc import ProxyProcess

POLICY = """\
version: 1
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  limits: {concurrency: 4, queue: 500, queue_timeout: 60s}
  timeouts: {headers: 60s, response: 60s}
"""


class Sender:
    """A keep-alive sender with TCP_NODELAY, like a well-configured webhook client.

    (Python requests does not set TCP_NODELAY on proxy connections: its POSTs then pay a
    40 ms delayed-ACK stall through any proxy, which would hide what we measure here.)
    """

    def __init__(self, proxy: ProxyProcess) -> None:
        self.conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
        self.conn.connect()
        assert self.conn.sock is not None
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, url: str) -> int:
        self.conn.request("POST", url, body=b'{"type": "ping"}')
        response = self.conn.getresponse()
        response.read()
        return response.status


def measure(sender: Sender, url: str, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        status = sender.post(url)
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="per phase and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stuck", type=int, default=100, help="requests held by the slow one")
    args = parser.parse_args()

    dns = TestDnsServer().start()
    dns.add("healthy.bench", "127.0.0.2")
    dns.add("slow.bench", "127.0.0.2")
    healthy, slow = Adversary(), Adversary()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        proxy = ProxyProcess(policy, Path(tmp) / "data", dns=[dns.spec])
        results: dict[str, list[float]] = {"idle": [], "saturated": []}
        try:
            sender = Sender(proxy)
            healthy_url = f"http://healthy.bench:{healthy.port}/ok"
            measure(sender, healthy_url, 50)  # warm up
            for _ in range(args.rounds):
                results["idle"] += measure(sender, healthy_url, args.requests)
                slow.gate.clear()
                stuck = [
                    threading.Thread(
                        target=requests.post,
                        args=(f"http://slow.bench:{slow.port}/gate",),
                        kwargs={"proxies": {"http": proxy.url}, "timeout": 120},
                        daemon=True,
                    )
                    for _ in range(args.stuck)
                ]
                for thread in stuck:
                    thread.start()
                while slow.active < 4:  # the slow receiver's cap is full...
                    time.sleep(0.01)
                results["saturated"] += measure(sender, healthy_url, args.requests)
                assert slow.max_active <= 4, "cap exceeded at the slow receiver"
                slow.gate.set()  # ...until we let it go
                for thread in stuck:
                    thread.join(timeout=60)
        finally:
            proxy.stop()
            healthy.stop()
            slow.stop()
            dns.stop()

    idle, busy = results["idle"], results["saturated"]
    print(f"deliveries to a healthy receiver, {len(idle)} per phase, {args.rounds} rounds")
    print(f"{'phase':<34}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'slow neighbour idle':<34}{pct(idle, 50):>10.2f}{pct(idle, 99):>10.2f}")
    print(
        f"{f'slow neighbour saturated ({args.stuck} held)':<34}"
        f"{pct(busy, 50):>10.2f}{pct(busy, 99):>10.2f}"
    )
    print(
        f"ratio saturated/idle: p50 {pct(busy, 50) / pct(idle, 50):.2f}, "
        f"p99 {pct(busy, 99) / pct(idle, 99):.2f}"
    )


if __name__ == "__main__":
    main()
