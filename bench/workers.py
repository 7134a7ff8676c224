"""Throughput of ``hookwall run --workers N``: 1 and 2 workers, side by side in one run.

Same environment as bench/bench.py (loopback receiver on 127.0.0.2, a local DNS server,
the default-like policy with signing, the JSON log to a file, the delivery store on) and the
same load generator (bench/loadgen.py, its own process). The configurations alternate every
round; the table reports the median requests/s over rounds, pooled p50/p99, and CPU shares
(the proxy's: the supervisor and every worker together). On a machine with few cores the
load generator and the receiver compete with the workers: the CPU columns say how much
each got.

    .venv/bin/python -m bench.workers [--rounds 3] [--duration 3] [--workers 1,2] [--redis]

``--redis`` adds the same worker counts with ``limits: {backend: redis://...}`` (a local
redis-server, started here): what the shared limits cost per request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bench import (
    HOOKWALL_POLICY,
    PROXY_IP,
    RECEIVER_IP,
    RECEIVER_NAME,
    ROOT,
    SCENARIOS,
    SECRET_ENV,
    VENV_BIN,
    Env,
    Scenario,
    cpu_seconds,
    environment,
    free_port,
    percentile,
    stop_process,
    wait_port,
)

SCENARIO_KEYS = ("http-ka-c50-1k", "http-new-c10-1k", "https-ka-c10-1k")


@dataclass
class Proxy:
    label: str
    workers: int
    proc: subprocess.Popen[Any]
    port: int
    cafile: str
    command: list[str]

    def pids(self) -> list[int]:
        """The supervisor (or the single process) and its workers."""
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(p) for p in children.split()]
        except OSError:
            pass
        return pids

    def cpu(self) -> float:
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):  # a worker that just exited
                total += cpu_seconds(pid)
        return total


def start(env: Env, workers: int, redis_url: str | None = None) -> Proxy:
    label = f"{workers}{'+redis' if redis_url else ''}"
    port = free_port(PROXY_IP)
    policy = env.tmp / f"hookwall-policy-{label}.yaml"
    shared = f'limits: {{backend: "{redis_url}"}}\n' if redis_url else ""
    policy.write_text(
        shared
        + HOOKWALL_POLICY.format(
            ca=env.ca_file,
            name=RECEIVER_NAME,
            ip=RECEIVER_IP,
            port=env.receiver.port,
            tls_port=env.receiver.tls_port,
            secret_env=SECRET_ENV,
        )
    )
    data_dir = env.tmp / f"hookwall-data-{label}"
    log_file = env.tmp / f"hookwall-{label}.log"
    command = [
        str(VENV_BIN / "hookwall"), "run", "--policy", str(policy),
        "--listen", f"{PROXY_IP}:{port}", "--data-dir", str(data_dir),
        "--dns-server", env.dns.spec, "--quiet", "--log-file", str(log_file),
        "--workers", str(workers),
    ]  # fmt: skip
    help_text = subprocess.run(
        [str(VENV_BIN / "hookwall"), "run", "--help"], capture_output=True, text=True
    ).stdout
    if "--admin-listen" in help_text:  # two proxies at once: no shared admin port
        command += ["--admin-listen", "off"]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env.child_env | env.secret
    )
    wait_port(PROXY_IP, port, proc, f"hookwall --workers {workers}")
    deadline = time.monotonic() + 30
    while workers > 1:  # every worker up, not only the first one
        text = log_file.read_text() if log_file.exists() else ""
        if text.count('"proxy_started"') >= workers:
            break
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"hookwall --workers {workers} did not start")
        time.sleep(0.1)
    return Proxy(label, workers, proc, port, str(data_dir / "mitmproxy-ca-cert.pem"), command)


def spec_for(proxy: Proxy, env: Env, scenario: Scenario, duration: float) -> dict[str, Any]:
    port = env.receiver.tls_port if scenario.tls else env.receiver.port
    spec: dict[str, Any] = {
        "host": RECEIVER_NAME,
        "port": port,
        "path": f"/{scenario.kib}k",
        "tls": scenario.tls,
        "concurrency": scenario.concurrency,
        "keepalive": scenario.keepalive,
        "warmup": 0.5,
        "duration": duration,
        "connect_to": [PROXY_IP, proxy.port],
    }
    if scenario.tls:
        return spec | {"mode": "connect", "cafile": proxy.cafile}
    return spec | {"mode": "proxy"}


def measure(proxy: Proxy, env: Env, scenario: Scenario, duration: float) -> dict[str, Any]:
    loadgen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            json.dumps(spec_for(proxy, env, scenario, duration)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert loadgen.stdout is not None
    samples: dict[str, float] = {}
    result: dict[str, Any] = {}
    for line in loadgen.stdout:
        line = line.strip()
        if line == "measure-start":
            samples |= {"t0": time.perf_counter(), "cpu0": proxy.cpu()}
            samples["recv0"] = cpu_seconds(env.receiver.pid)
        elif line == "measure-end":
            samples |= {"t1": time.perf_counter(), "cpu1": proxy.cpu()}
            samples["recv1"] = cpu_seconds(env.receiver.pid)
        elif line.startswith("{"):
            result = json.loads(line)
            break
    loadgen.wait(timeout=60)
    if not result:
        raise RuntimeError("the load generator failed")
    wall = samples["t1"] - samples["t0"]
    lat = result["latencies_ms"]
    return {
        "rps": len(lat) / result["duration"],
        "latencies_ms": lat,
        "errors": result["errors"],
        "proxy_cpu_pct": 100 * (samples["cpu1"] - samples["cpu0"]) / wall,
        "loadgen_cpu_pct": 100 * result["cpu_s"] / result["duration"],
        "receiver_cpu_pct": 100 * (samples["recv1"] - samples["recv0"]) / wall,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument("--json", metavar="PATH", help="write the raw numbers here")
    parser.add_argument("--redis", action="store_true", help="also with the Redis backend")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    labels = [str(n) for n in counts] + ([f"{n}+redis" for n in counts] if args.redis else [])
    scenarios = [s for s in SCENARIOS if s.key in SCENARIO_KEYS]
    print(f"machine: {os.cpu_count()} CPUs, {sys.version.split()[0]}", flush=True)
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with environment(force_asyncio=False) as env:
        print(f"receiver: {env.receiver.kind}", flush=True)
        redis = None
        if args.redis:
            from tests.support.redisserver import RedisServer

            redis = RedisServer(env.tmp / "redis").start()
        proxies = {str(n): start(env, n) for n in counts}
        for count in counts if redis else ():
            proxies[f"{count}+redis"] = start(env, count, redis.url if redis else None)
        try:
            for round_ in range(args.rounds):
                order = labels if round_ % 2 == 0 else list(reversed(labels))
                for scenario in scenarios:
                    for label in order:
                        cell = measure(proxies[label], env, scenario, args.duration)
                        cells.setdefault((scenario.key, label), []).append(cell)
                        print(
                            f"round {round_ + 1} {scenario.key:18} workers={label}: "
                            f"{cell['rps']:8.0f} req/s  errors={cell['errors']}",
                            flush=True,
                        )
        finally:
            for proxy in proxies.values():
                stop_process(proxy.proc)
            if redis is not None:
                redis.stop()
    print()
    header = f"{'scenario':18} {'workers':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
    print(header + f"{'proxy CPU%':>10} {'loadgen%':>8} {'recv%':>6}  ratio")
    summary: dict[str, Any] = {}
    for scenario in scenarios:
        base = None
        for label in labels:
            runs = cells[(scenario.key, label)]
            rps = statistics.median(c["rps"] for c in runs)
            lat = [x for c in runs for x in c["latencies_ms"]]
            base = base or rps
            row = {
                "rps": round(rps, 1),
                "p50_ms": percentile(lat, 50),
                "p99_ms": percentile(lat, 99),
                "proxy_cpu_pct": statistics.median(c["proxy_cpu_pct"] for c in runs),
                "loadgen_cpu_pct": statistics.median(c["loadgen_cpu_pct"] for c in runs),
                "receiver_cpu_pct": statistics.median(c["receiver_cpu_pct"] for c in runs),
                "ratio_to_first": round(rps / base, 3),
                "rounds": [round(c["rps"], 1) for c in runs],
            }
            summary.setdefault(scenario.key, {})[label] = row
            print(
                f"{scenario.key:18} {label:>7} {rps:8.0f} {row['p50_ms'] or 0:7.2f} "
                f"{row['p99_ms'] or 0:7.2f} {row['proxy_cpu_pct']:10.0f} "
                f"{row['loadgen_cpu_pct']:8.0f} {row['receiver_cpu_pct']:6.0f}  "
                f"{row['ratio_to_first']:.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine_cpus": os.cpu_count(), **summary}))


if __name__ == "__main__":
    main()
