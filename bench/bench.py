"""What does hookwall cost? Direct delivery, bare mitmdump, hookwall and Squid, side by side.

Everything runs on loopback: a receiver on 127.0.0.2 (nginx if installed, else
bench/receiver.py), a local DNS server for hookwall (the system resolver is never used), the
proxies on 127.0.0.1, and a load generator in its own process (bench/loadgen.py). Each
scenario is measured for every configuration in turn, the order rotating every round, so
the configurations see the same machine conditions; the table reports medians over rounds
(requests/s) and pooled latencies (p50/p99).

    .venv/bin/python -m bench.bench [--quick] [--rounds 3] [--duration 1.5] [--json PATH]
    .venv/bin/python -m bench.bench --soak [--soak-requests 200000]   # RSS across a long run
    .venv/bin/python -m bench.bench --profile [--profile-seconds 20]  # py-spy, addon shares

Configurations (the exact commands are printed and stored in the JSON):
  direct    the load generator talks to the receiver itself
  mitmdump  .venv/bin/mitmdump, no scripts: quiet, HTTP/1.1 only, no onboarding, upstream
            verified against certifi + the receiver CA (as hookwall does)
  hookwall  .venv/bin/hookwall run with a policy shaped like the built-in default (SSRF guard,
            DNS via the local server, flood control, timeouts, body caps, redirect policy),
            signing ON (standard-webhooks, secret from an env var), JSON log to a file
  squid     when installed: a forward proxy with a destination ACL (dst 127.0.0.2, the two
            receiver ports), no cache, no access log; HTTPS through it is a CONNECT tunnel
            (Squid does not intercept), so HTTPS rows are not comparable with the others
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import certifi
import trustme

from tests.support.dnsserver import TestDnsServer

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RECEIVER_IP = "127.0.0.2"  # the policy allows exactly this address as an exception
PROXY_IP = "127.0.0.1"
RECEIVER_NAME = "recv.bench"  # served by the local DNS server (hookwall), hosts file (Squid)
CLK_TCK = os.sysconf("SC_CLK_TCK")
SECRET_ENV = "HOOKWALL_BENCH_WHSEC"


# -- scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    tls: bool
    keepalive: bool
    concurrency: int
    kib: int


SCENARIOS = (
    Scenario("http-ka-c1-1k", "HTTP keep-alive, c=1, 1 KiB", False, True, 1, 1),
    Scenario("http-ka-c10-1k", "HTTP keep-alive, c=10, 1 KiB", False, True, 10, 1),
    Scenario("http-ka-c50-1k", "HTTP keep-alive, c=50, 1 KiB", False, True, 50, 1),
    Scenario("http-ka-c10-256k", "HTTP keep-alive, c=10, 256 KiB", False, True, 10, 256),
    Scenario(
        "http-new-c10-1k", "HTTP new connection per request, c=10, 1 KiB", False, False, 10, 1
    ),
    Scenario("https-ka-c10-1k", "HTTPS intercepted, keep-alive, c=10, 1 KiB", True, True, 10, 1),
    Scenario(
        "https-ka-c10-256k", "HTTPS intercepted, keep-alive, c=10, 256 KiB", True, True, 10, 256
    ),
    Scenario(
        "https-new-c10-1k",
        "HTTPS intercepted, CONNECT per request, c=10, 1 KiB",
        True,
        False,
        10,
        1,
    ),
)


# -- small helpers --------------------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(
    host: str, port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout}s")


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 15) -> None:
    """Stop a child we started (by its own Popen handle, never by name)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is per measurement."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


# -- the environment: CA, receiver, DNS -----------------------------------------------------


@dataclass
class Receiver:
    kind: str
    port: int
    tls_port: int
    proc: subprocess.Popen[Any]
    command: list[str]

    @property
    def pid(self) -> int:
        return self.proc.pid


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
error_log {tmp}/nginx-error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;
    default_type text/plain;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen {ip}:{port};
        listen {ip}:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
        # Static files answer POST with 405; serve them as 200 (the webhook body is discarded).
        location / {{ error_page 405 =200 $uri; }}
    }}
}}
"""


def start_receiver(tmp: Path, cert: Path, key: Path, force_asyncio: bool) -> Receiver:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if nginx and not force_asyncio:
        www = tmp / "www"
        www.mkdir()
        for scenario in SCENARIOS:
            (www / f"{scenario.kib}k").write_bytes(b"x" * (scenario.kib * 1024))
        port, tls_port = free_port(RECEIVER_IP), free_port(RECEIVER_IP)
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=tmp, ip=RECEIVER_IP, port=port, tls_port=tls_port, cert=cert, key=key, www=www
            )
        )
        command = [nginx, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(RECEIVER_IP, port, proc, "nginx")
        wait_port(RECEIVER_IP, tls_port, proc, "nginx")
        return Receiver("nginx", port, tls_port, proc, command)
    command = [
        sys.executable, "-m", "bench.receiver", "--host", RECEIVER_IP,
        "--cert", str(cert), "--key", str(key),
    ]  # fmt: skip
    receiver: subprocess.Popen[str] = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    ports = json.loads(receiver.stdout.readline() or "{}")
    if "port" not in ports:
        raise RuntimeError("the asyncio receiver did not start")
    return Receiver(
        "asyncio (bench/receiver.py)", ports["port"], ports["tls_port"], receiver, command
    )


# -- configurations -------------------------------------------------------------------------


@dataclass
class Config:
    name: str
    description: str
    host: str = RECEIVER_IP  # the URL host the sender uses
    proc: subprocess.Popen[Any] | None = None
    port: int = 0
    cafile: str | None = None  # what the sender trusts for intercepted HTTPS
    command: list[str] = field(default_factory=list)
    interception: bool = True
    log_file: Path | None = None
    files: dict[str, str] = field(default_factory=dict)  # generated config files, for the record

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def spec(self, scenario: Scenario, env: Env, warmup: float, duration: float) -> dict[str, Any]:
        port = env.receiver.tls_port if scenario.tls else env.receiver.port
        spec: dict[str, Any] = {
            "host": self.host,
            "port": port,
            "path": f"/{scenario.kib}k",
            "tls": scenario.tls,
            "concurrency": scenario.concurrency,
            "keepalive": scenario.keepalive,
            "warmup": warmup,
            "duration": duration,
        }
        if self.proc is None:  # direct
            spec |= {"mode": "direct", "connect_to": [RECEIVER_IP, port], "cafile": env.ca_file}
        elif scenario.tls:
            cafile = self.cafile if self.interception else env.ca_file
            spec |= {"mode": "connect", "connect_to": [PROXY_IP, self.port], "cafile": cafile}
        else:
            spec |= {"mode": "proxy", "connect_to": [PROXY_IP, self.port]}
        return spec


HOOKWALL_POLICY = """\
# The built-in default policy's settings, written out, plus the benchmark destination.
version: 1
dns: {{timeout: 2s, max_ttl: 5m, cache_size: 10000}}
proxy: {{max_connections: 2000, idle_timeout: 60s}}
defaults:
  network:
    deny: [special-purpose]
    allow: []
    ports: [80, 443]
  tls: intercept
  ca_bundle: {ca}
  limits:
    concurrency: 8
    queue: 100
    queue_timeout: 10s
    retry_after_max: 5m
    circuit: {{failures: 5, cooloff: 30s}}
  timeouts: {{connect: 5s, headers: 15s, response: 30s}}
  redirects: {{mode: deny}}
  max_request_body: 1MiB
  max_response_body: 1MiB
destinations:
  - hosts: ["{name}"]
    network:
      allow: [{ip}/32]          # a name-scoped exception: loopback receiver, this host only
      ports: [{port}, {tls_port}]
    # Above the load's concurrency, so the cap does not throttle the benchmark (the limiter
    # still runs: every request takes and returns a slot).
    limits: {{concurrency: 64, queue: 1000}}
    signing: {{scheme: standard-webhooks, secrets: ["env:{secret_env}"]}}
"""

SQUID_CONF = """\
http_port {proxy_ip}:{port}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log none
cache deny all
cache_mem 8 MB
hosts_file {dir}/hosts
# Nothing listens there: a stray lookup stays on loopback and fails.
dns_nameservers 127.0.0.1
coredump_dir {dir}
shutdown_lifetime 0 seconds
visible_hostname hookwall-bench
acl bench_dst dst {ip}/32
acl bench_ports port {port_http} {port_tls}
acl CONNECT method CONNECT
http_access deny !bench_ports
http_access allow bench_dst
http_access deny all
"""


def start_mitmdump(env: Env) -> Config:
    port = free_port(PROXY_IP)
    confdir = env.tmp / "mitmdump"
    confdir.mkdir()
    bundle = env.tmp / "mitmdump-upstream-ca.pem"
    bundle.write_text(Path(certifi.where()).read_text() + "\n" + Path(env.ca_file).read_text())
    command = [
        str(VENV_BIN / "mitmdump"), "-q",
        "--listen-host", PROXY_IP, "--listen-port", str(port),
        "--set", f"confdir={confdir}",
        "--set", "http2=false", "--set", "http3=false",
        "--set", "websocket=false", "--set", "rawtcp=false",
        "--set", "onboarding=false",
        "--set", "connection_strategy=eager",
        "--set", f"ssl_verify_upstream_trusted_ca={bundle}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env.child_env
    )
    wait_port(PROXY_IP, port, proc, "mitmdump")
    return Config(
        "mitmdump",
        "bare mitmdump (DumpMaster, default addons, no scripts)",
        proc=proc,
        port=port,
        cafile=str(confdir / "mitmproxy-ca-cert.pem"),
        command=command,
    )


# Variants of hookwall measured next to it (--no-variants skips them): what each default
# costs or saves, side by side in the same run. (name, extra `hookwall run` flags, what).
BASELINE = "hw-baseline"
VARIANTS = (
    ("hw-nostore", ["--no-store"], "hookwall as above with --no-store (no delivery store)"),
    (
        "hw-uvloop",
        ["--event-loop", "uvloop"],
        "hookwall as above on uvloop instead of the standard library's event loop",
    ),
)


def start_hookwall(
    env: Env,
    log_file: Path | str,
    name: str = "hookwall",
    extra: Sequence[str] = (),
    description: str = "hookwall run, default-like policy, signing on, JSON log to a file",
    source: Path | None = None,
) -> Config:
    """``source``: run the hookwall package found in this src/ directory (another checkout,
    e.g. the commit before a change) with this venv's dependencies."""
    port = free_port(PROXY_IP)
    policy = env.tmp / "hookwall-policy.yaml"
    policy.write_text(
        HOOKWALL_POLICY.format(
            ca=env.ca_file,
            name=RECEIVER_NAME,
            ip=RECEIVER_IP,
            port=env.receiver.port,
            tls_port=env.receiver.tls_port,
            secret_env=SECRET_ENV,
        )
    )
    data_dir = env.tmp / f"{name}-data"
    program = [str(VENV_BIN / "hookwall")]
    if source is not None:
        program = [str(VENV_BIN / "python"), "-m", "hookwall"]
    command = [
        *program, "run", "--policy", str(policy),
        "--listen", f"{PROXY_IP}:{port}", "--data-dir", str(data_dir),
        "--dns-server", env.dns.spec, "--quiet", "--log-file", str(log_file),
        "--admin-listen", f"{PROXY_IP}:0", *extra,
    ]  # fmt: skip
    child_env = env.child_env | env.secret
    if source is not None:  # ahead of this checkout's editable install on sys.path
        child_env = child_env | {"PYTHONPATH": str(source)}
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env
    )
    wait_port(PROXY_IP, port, proc, name)
    return Config(
        name,
        description,
        host=RECEIVER_NAME,
        proc=proc,
        port=port,
        cafile=str(data_dir / "mitmproxy-ca-cert.pem"),
        command=command,
        log_file=Path(log_file),
        files={"policy.yaml": policy.read_text()},
    )


def start_squid(env: Env) -> Config | None:
    squid = shutil.which("squid") or next(
        (p for p in ("/usr/sbin/squid", "/usr/local/sbin/squid") if Path(p).exists()), None
    )
    if squid is None:
        return None
    port = free_port(PROXY_IP)
    sdir = env.tmp / "squid"
    sdir.mkdir()
    sdir.chmod(0o777)  # Squid drops root privileges to its own user
    (sdir / "hosts").write_text(f"{RECEIVER_IP} {RECEIVER_NAME}\n")
    conf = sdir / "squid.conf"
    conf.write_text(
        SQUID_CONF.format(
            proxy_ip=PROXY_IP,
            port=port,
            dir=sdir,
            ip=RECEIVER_IP,
            port_http=env.receiver.port,
            port_tls=env.receiver.tls_port,
        )
    )
    command = [squid, "-N", "-f", str(conf)]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env.child_env
    )
    wait_port(PROXY_IP, port, proc, "squid")
    return Config(
        "squid",
        "Squid forward proxy, destination ACL, no cache (HTTPS: CONNECT tunnel, not intercepted)",
        proc=proc,
        port=port,
        command=command,
        interception=False,
        files={"squid.conf": conf.read_text()},
    )


@dataclass
class Env:
    tmp: Path
    ca_file: str
    receiver: Receiver
    dns: TestDnsServer
    secret: dict[str, str]
    child_env: dict[str, str]


@contextmanager
def environment(force_asyncio: bool) -> Iterator[Env]:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hookwall-bench-")))
        tmp.chmod(0o755)  # Squid and nginx workers may run as another user
        ca = trustme.CA()
        ca_file = tmp / "receiver-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        leaf = ca.issue_cert(RECEIVER_NAME, RECEIVER_IP)
        cert, key = tmp / "receiver-cert.pem", tmp / "receiver-key.pem"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        receiver = start_receiver(tmp, cert, key, force_asyncio)
        stack.callback(stop_process, receiver.proc)
        dns = TestDnsServer().start()
        stack.callback(dns.stop)
        dns.add(RECEIVER_NAME, RECEIVER_IP)
        secret = {SECRET_ENV: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()}
        child_env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        yield Env(tmp, str(ca_file), receiver, dns, secret, child_env)


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Cell:
    scenario: str
    config: str
    round: int
    measured: int
    ok: int
    errors: dict[str, int]
    duration: float
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    loadgen_cpu_pct: float
    proxy_cpu_pct: float | None
    proxy_cpu_us_per_req: float | None
    receiver_cpu_pct: float
    peak_rss_kib: int | None
    rss_kib: int | None
    latencies_ms: list[float] = field(default_factory=list, repr=False)


def run_loadgen(
    spec: dict[str, Any], proxy_pid: int | None, receiver_pid: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one load in its own process; sample the proxy and receiver over its window."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    samples: dict[str, Any] = {}
    try:
        for line in proc.stdout:
            line = line.strip()
            if line == "measure-start":
                samples["t0"] = time.perf_counter()
                samples["recv0"] = cpu_seconds(receiver_pid)
                if proxy_pid:
                    samples["cpu0"] = cpu_seconds(proxy_pid)
                    reset_peak_rss(proxy_pid)
            elif line == "measure-end":
                samples["t1"] = time.perf_counter()
                samples["recv1"] = cpu_seconds(receiver_pid)
                if proxy_pid:
                    samples["cpu1"] = cpu_seconds(proxy_pid)
                    samples["mem"] = memory_kib(proxy_pid)
            elif line.startswith("{"):
                result = json.loads(line)
                break
        else:
            raise RuntimeError(f"the load generator failed (exit {proc.wait()})")
    finally:
        if proc.poll() is None:
            proc.wait(timeout=60)
    return result, samples


def measure(
    env: Env, config: Config, scenario: Scenario, round_: int, warmup: float, duration: float
) -> Cell:
    spec = config.spec(scenario, env, warmup, duration)
    result, s = run_loadgen(spec, config.pid, env.receiver.pid)
    wall = s["t1"] - s["t0"]
    lat = result["latencies_ms"]
    proxy_cpu = s["cpu1"] - s["cpu0"] if config.pid else None
    mem = s.get("mem", {})
    return Cell(
        scenario=scenario.key,
        config=config.name,
        round=round_,
        measured=result["measured"],
        ok=len(lat),
        errors=result["errors"],
        duration=result["duration"],
        rps=len(lat) / result["duration"],
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        max_ms=max(lat) if lat else None,
        loadgen_cpu_pct=100 * result["cpu_s"] / result["duration"],
        proxy_cpu_pct=100 * proxy_cpu / wall if proxy_cpu is not None else None,
        proxy_cpu_us_per_req=1e6 * proxy_cpu / len(lat) if proxy_cpu is not None and lat else None,
        receiver_cpu_pct=100 * (s["recv1"] - s["recv0"]) / wall,
        peak_rss_kib=mem.get("VmHWM"),
        rss_kib=mem.get("VmRSS"),
        latencies_ms=lat,
    )


def sanity_check(env: Env, configs: list[Config]) -> None:
    """One request per configuration and protocol; hookwall must have signed and logged it."""
    for config in configs:
        for scenario in (SCENARIOS[0], SCENARIOS[5]):
            spec = config.spec(scenario, env, 0.0, 15.0) | {"concurrency": 1, "max_requests": 3}
            result, _ = run_loadgen(spec, None, env.receiver.pid)
            if not result["latencies_ms"]:
                raise RuntimeError(
                    f"{config.name} / {scenario.key}: no successful request ({result['errors']})"
                )
    hookwall = next((c for c in configs if c.name == "hookwall"), None)
    if hookwall and hookwall.log_file and hookwall.log_file.exists():
        events = [json.loads(x) for x in hookwall.log_file.read_text().splitlines() if x.strip()]
        exchanges = [e for e in events if e.get("event") == "exchange"]
        signed = [e for e in exchanges if e.get("signed") == "standard-webhooks"]
        if not exchanges or len(signed) != len(exchanges):
            raise RuntimeError(
                f"hookwall should sign every delivery: {len(signed)} of {len(exchanges)} signed"
            )


# -- reporting ------------------------------------------------------------------------------


def summarise(cells: list[Cell]) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        grouped.setdefault((cell.scenario, cell.config), []).append(cell)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (scenario, config), group in grouped.items():
        pooled = [x for c in group for x in c.latencies_ms]

        def med(attr: str, group: list[Cell] = group) -> float | None:
            values = [getattr(c, attr) for c in group if getattr(c, attr) is not None]
            return statistics.median(values) if values else None

        peaks = [c.peak_rss_kib for c in group if c.peak_rss_kib is not None]
        errors: dict[str, int] = {}
        for c in group:
            for k, v in c.errors.items():
                errors[k] = errors.get(k, 0) + v
        out.setdefault(scenario, {})[config] = {
            "rounds": len(group),
            "rps": med("rps"),
            "rps_rounds": [round(c.rps, 1) for c in group],
            "requests": sum(c.ok for c in group),
            "p50_ms": percentile(pooled, 50),
            "p90_ms": percentile(pooled, 90),
            "p99_ms": percentile(pooled, 99),
            "peak_rss_mib": max(peaks) / 1024 if peaks else None,
            "proxy_cpu_pct": med("proxy_cpu_pct"),
            "proxy_cpu_us_per_req": med("proxy_cpu_us_per_req"),
            "loadgen_cpu_pct": med("loadgen_cpu_pct"),
            "receiver_cpu_pct": med("receiver_cpu_pct"),
            "errors": errors,
        }
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for scenario, by_config in summary.items():
        hw = by_config.get("hookwall")
        if hw is None:
            continue
        row: dict[str, Any] = {}
        mitm = by_config.get("mitmdump")
        for variant, *_ in VARIANTS:
            v = by_config.get(variant)
            if v is not None and mitm is not None:
                row[f"{variant}_rps_vs_mitmdump"] = ratio(v["rps"], mitm["rps"])
        base = by_config.get(BASELINE)
        if base is not None:
            row["rps_vs_baseline"] = ratio(hw["rps"], base["rps"])
            row["cpu_per_req_vs_baseline"] = ratio(
                hw["proxy_cpu_us_per_req"], base["proxy_cpu_us_per_req"]
            )
        for other in ("mitmdump", "direct", "squid"):
            o = by_config.get(other)
            if o is None:
                continue
            row[f"rps_vs_{other}"] = ratio(hw["rps"], o["rps"])
            if hw["p50_ms"] is not None and o["p50_ms"] is not None:
                row[f"p50_added_ms_vs_{other}"] = hw["p50_ms"] - o["p50_ms"]
            if other != "direct":
                row[f"cpu_per_req_vs_{other}"] = ratio(
                    hw["proxy_cpu_us_per_req"], o["proxy_cpu_us_per_req"]
                )
        out[scenario] = row
    return out


def fmt(value: float | None, spec: str = ".1f", width: int = 8) -> str:
    return f"{'-' if value is None else format(value, spec):>{width}}"


def print_table(summary: dict[str, dict[str, dict[str, Any]]], configs: list[str]) -> None:
    print()
    head = (
        f"  {'config':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'RSS MiB':>9}"
        f"{'proxy':>8}{'CPU us':>9}{'loadgen':>9}{'recv':>7}  errors"
    )
    print("Per scenario: req/s = median over rounds; p50/p99 over all rounds' requests;")
    print("RSS = the proxy's peak RSS during the scenario; proxy / loadgen / recv = CPU % of one")
    print("core; CPU us = the proxy's CPU time per request.")
    for scenario in SCENARIOS:
        rows = summary.get(scenario.key)
        if not rows:
            continue
        print(f"\n{scenario.title}  [{scenario.key}]")
        print(head)
        for name in configs:
            r = rows.get(name)
            if r is None:
                continue
            errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
            print(
                f"  {name:<10}{fmt(r['rps'], '.0f', 9)}{fmt(r['p50_ms'], '.2f', 9)}"
                f"{fmt(r['p99_ms'], '.2f', 9)}{fmt(r['peak_rss_mib'], '.1f', 9)}"
                f"{fmt(r['proxy_cpu_pct'], '.0f')}{fmt(r['proxy_cpu_us_per_req'], '.0f', 9)}"
                f"{fmt(r['loadgen_cpu_pct'], '.0f', 9)}{fmt(r['receiver_cpu_pct'], '.0f', 7)}"
                f"  {errors}"
            )


def print_ratios(rat: dict[str, dict[str, Any]], has_squid: bool) -> None:
    print("\nRatios (hookwall / other): throughput, and the proxy's CPU time per request")
    cols = [("rps_vs_mitmdump", "thr/mitm"), ("cpu_per_req_vs_mitmdump", "cpu/mitm"),
            ("rps_vs_direct", "thr/direct"), ("p50_added_ms_vs_direct", "+p50 ms")]  # fmt: skip
    if has_squid:
        cols += [("rps_vs_squid", "thr/squid"), ("cpu_per_req_vs_squid", "cpu/squid")]
    print(f"  {'scenario':<20}" + "".join(f"{label:>11}" for _, label in cols))
    for scenario in SCENARIOS:
        row = rat.get(scenario.key)
        if row is None:
            continue
        cells = "".join(
            fmt(row.get(key), ".3f" if key.startswith("p50") else ".2f", 11) for key, _ in cols
        )
        note = "  (Squid: tunnel)" if has_squid and scenario.tls else ""
        print(f"  {scenario.key:<20}{cells}{note}")
    if any("rps_vs_baseline" in row for row in rat.values()):
        print("\nThis checkout / the baseline (--baseline), in the same run")
        print(f"  {'scenario':<20}{'thr':>11}{'cpu/req':>11}")
        for scenario in SCENARIOS:
            row = rat.get(scenario.key)
            if row is not None and "rps_vs_baseline" in row:
                cells = fmt(row.get("rps_vs_baseline"), ".2f", 11)
                cells += fmt(row.get("cpu_per_req_vs_baseline"), ".2f", 11)
                print(f"  {scenario.key:<20}{cells}")
    keys = [(f"{name}_rps_vs_mitmdump", name) for name, *_ in VARIANTS]
    if not any(key in row for row in rat.values() for key, _ in keys):
        return
    print("\nVariants: throughput / bare mitmdump (hookwall's own column repeated)")
    print(f"  {'scenario':<20}{'hookwall':>11}" + "".join(f"{label:>11}" for _, label in keys))
    for scenario in SCENARIOS:
        row = rat.get(scenario.key)
        if row is None:
            continue
        cells = fmt(row.get("rps_vs_mitmdump"), ".2f", 11)
        cells += "".join(fmt(row.get(key), ".2f", 11) for key, _ in keys)
        print(f"  {scenario.key:<20}{cells}")


def targets(summary: dict[str, Any], rat: dict[str, Any]) -> list[str]:
    lines = []
    ka = rat.get("http-ka-c10-1k", {}).get("rps_vs_mitmdump")
    others = [r.get("rps_vs_mitmdump") for r in rat.values() if r.get("rps_vs_mitmdump")]
    if ka is not None:
        verdict = "met" if ka >= 1.5 else "NOT met"
        lines.append(
            f"throughput >= 1.5x bare mitmdump (HTTP keep-alive c=10): {ka:.2f}x -> {verdict}"
            f" (range over scenarios {min(others):.2f}-{max(others):.2f}x)"
        )
    c1 = rat.get("http-ka-c1-1k", {}).get("p50_added_ms_vs_direct")
    if c1 is not None:
        verdict = "met" if c1 < 1.0 else "NOT met"
        lines.append(f"added p50 over direct at c=1 < 1 ms: {c1:.3f} ms -> {verdict}")
    return lines


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import mitmproxy.version

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mitmproxy": mitmproxy.version.VERSION,
        "nginx": version_of(["nginx", "-v"]) if shutil.which("nginx") else None,
        "squid": version_of(["squid", "-v"]) if shutil.which("squid") else None,
        "loadavg_start": os.getloadavg(),
    }


# -- modes ----------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, "
        f"Python {info['python']}, mitmproxy {info['mitmproxy']}; "
        f"load average {info['loadavg_start'][0]:.2f}"
    )
    wanted = [s for s in SCENARIOS if not args.scenario or s.key in args.scenario]
    with environment(args.asyncio_receiver) as env, ExitStack() as stack:
        print(
            f"receiver: {env.receiver.kind} on {RECEIVER_IP}:{env.receiver.port} "
            f"(TLS :{env.receiver.tls_port})"
        )
        configs = [Config("direct", "the load generator talks to the receiver itself")]
        configs.append(start_mitmdump(env))
        stack.callback(stop_process, configs[-1].proc)
        # Against a baseline, both run the same way (python -m hookwall, PYTHONPATH=src): the
        # console script alone changes the peak RSS by ~15 MiB.
        own = ROOT / "src" if args.baseline is not None else None
        configs.append(start_hookwall(env, env.tmp / "hookwall.log", source=own))
        stack.callback(stop_process, configs[-1].proc)
        for name, extra, what in () if args.no_variants else VARIANTS:
            configs.append(start_hookwall(env, env.tmp / f"{name}.log", name, extra, what))
            stack.callback(stop_process, configs[-1].proc)
        if args.baseline is not None:
            what = f"hookwall from {args.baseline} (the baseline a change is compared with)"
            configs.append(
                start_hookwall(env, env.tmp / "baseline.log", BASELINE, (), what, args.baseline)
            )
            stack.callback(stop_process, configs[-1].proc)
        squid = None if args.no_squid else start_squid(env)
        if squid is not None:
            configs.append(squid)
            stack.callback(stop_process, squid.proc)
        else:
            print("squid: not installed (or --no-squid): skipped")
        for c in configs[1:]:
            print(f"{c.name}: {' '.join(c.command)}")
        sanity_check(env, configs)
        names = [c.name for c in configs]
        cells: list[Cell] = []
        total = args.rounds * len(wanted) * len(configs)
        started = time.monotonic()
        for r in range(args.rounds):
            order = configs[r % len(configs) :] + configs[: r % len(configs)]
            for scenario in wanted:
                for config in order:
                    cell = measure(env, config, scenario, r, args.warmup, args.duration)
                    cells.append(cell)
                    if sys.stdout.isatty():
                        print(
                            f"\r  round {r + 1}/{args.rounds}, {len(cells)}/{total} "
                            f"measurements, {time.monotonic() - started:.0f}s",
                            end="",
                            flush=True,
                        )
            if not sys.stdout.isatty():
                print(f"  round {r + 1}/{args.rounds} done, {time.monotonic() - started:.0f}s")
        print()
        hookwall = next(c for c in configs if c.name == "hookwall")
        assert hookwall.log_file is not None
        log_lines = sum(1 for _ in hookwall.log_file.open())
    summary = summarise(cells)
    rat = ratios(summary)
    print_table(summary, names)
    print_ratios(rat, squid is not None)
    info["loadavg_end"] = os.getloadavg()
    print(
        f"\nload average at the end {info['loadavg_end'][0]:.2f}; "
        f"hookwall wrote {log_lines} log lines"
    )
    verdicts = targets(summary, rat)
    print("\nTargets (issue 9):")
    for line in verdicts:
        print(f"  {line}")
    print("  RSS flat across 200k requests: run --soak")
    if args.quick:
        print("\n(--quick: one short round; numbers are for smoke-testing, not for the README)")
    return {
        "machine": info,
        "settings": {k: v for k, v in vars(args).items()},
        "receiver": {"kind": env.receiver.kind, "command": env.receiver.command},
        "configs": {
            c.name: {"description": c.description, "command": c.command, "files": c.files}
            for c in configs
        },
        "scenarios": [asdict(s) for s in wanted],
        "summary": summary,
        "ratios": rat,
        "targets": verdicts,
        "rounds": [{k: v for k, v in asdict(c).items() if k != "latencies_ms"} for c in cells],
    }


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """200k requests through hookwall; RSS after a warm-up, during, and at the end."""
    info = machine()
    with environment(args.asyncio_receiver) as env, ExitStack() as stack:
        hookwall = start_hookwall(env, os.devnull)
        stack.callback(stop_process, hookwall.proc)
        assert hookwall.pid is not None
        pid = hookwall.pid
        scenario = SCENARIOS[1]  # HTTP keep-alive, c=10, 1 KiB
        print(
            f"soak: {args.soak_requests} requests through hookwall ({scenario.title}), "
            f"receiver {env.receiver.kind}, log to /dev/null"
        )
        warm = hookwall.spec(scenario, env, 0.0, 600.0) | {"max_requests": args.soak_warmup}
        run_loadgen(warm, pid, env.receiver.pid)
        before = memory_kib(pid)
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(1.0):
                samples.append((round(time.monotonic() - t0, 1), memory_kib(pid)["VmRSS"]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        spec = hookwall.spec(scenario, env, 0.0, args.soak_timeout) | {
            "max_requests": args.soak_requests
        }
        started = time.monotonic()
        result, _ = run_loadgen(spec, pid, env.receiver.pid)
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        after = memory_kib(pid)
    growth = 100 * (after["VmRSS"] - before["VmRSS"]) / before["VmRSS"]
    lat = result["latencies_ms"]
    print(
        f"  {len(lat)} ok, errors {result['errors'] or 0}, {elapsed:.0f}s, "
        f"{len(lat) / elapsed:.0f} req/s, p50 {percentile(lat, 50):.2f} ms, "
        f"p99 {percentile(lat, 99):.2f} ms"
    )
    print(
        f"  RSS after {args.soak_warmup} warm-up requests: {before['VmRSS'] / 1024:.1f} MiB; "
        f"after the soak: {after['VmRSS'] / 1024:.1f} MiB (peak {after['VmHWM'] / 1024:.1f}); "
        f"growth {growth:+.1f}% -> {'met' if growth < 10 else 'NOT met'} (target < 10%)"
    )
    if samples:
        step = max(1, len(samples) // 10)
        curve = ", ".join(f"{t:.0f}s {kib / 1024:.1f}" for t, kib in samples[::step])
        print(f"  RSS MiB over time: {curve}")
    return {
        "machine": info,
        "soak": {
            "requests": args.soak_requests,
            "ok": len(lat),
            "errors": result["errors"],
            "seconds": elapsed,
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "rss_before_kib": before["VmRSS"],
            "rss_after_kib": after["VmRSS"],
            "peak_rss_kib": after["VmHWM"],
            "growth_pct": growth,
            "rss_samples": samples,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1.5, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring")
    parser.add_argument("--scenario", action="append", help="only these scenario keys")
    parser.add_argument("--json", metavar="PATH", help="write the raw numbers here")
    parser.add_argument("--no-squid", action="store_true", help="skip Squid even if installed")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also measure the hookwall package in this src/ directory (e.g. a git worktree of "
        "the commit before a change: git worktree add /tmp/base HEAD~1; --baseline "
        "/tmp/base/src) and print this checkout's ratios to it",
    )
    parser.add_argument(
        "--no-variants",
        action="store_true",
        help="skip hookwall's variants (--no-store, --event-loop uvloop)",
    )
    parser.add_argument(
        "--asyncio-receiver", action="store_true", help="use bench/receiver.py even with nginx"
    )
    parser.add_argument("--soak", action="store_true", help="the long run: RSS across N requests")
    parser.add_argument("--soak-requests", type=int, default=200_000)
    parser.add_argument("--soak-warmup", type=int, default=5_000)
    parser.add_argument("--soak-timeout", type=float, default=1800.0, help="hard stop, seconds")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of hookwall")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument(
        "--profile-scenario",
        default="http-ka-c10-1k",
        choices=[s.key for s in SCENARIOS],
        help="the load during the profile",
    )
    parser.add_argument("--profile-out", metavar="DIR", help="keep the py-spy output here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 0.6, 0.2
        args.soak_requests = min(args.soak_requests, 20_000)
        args.soak_warmup = min(args.soak_warmup, 2_000)
        args.profile_seconds = min(args.profile_seconds, 5.0)
    if args.profile:
        from bench.profile import profile

        out = profile(args)
    elif args.soak:
        out = soak(args)
    else:
        out = benchmark(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"raw numbers: {args.json}")


if __name__ == "__main__":
    main()
