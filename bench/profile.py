"""Where does hookwall spend its CPU? py-spy on the real proxy under a keep-alive load.

Run through ``bench.bench --profile`` (it shares the receiver, DNS and load generator):

    .venv/bin/python -m bench.bench --profile [--profile-seconds 20] [--profile-out DIR]

For hookwall and for bare mitmdump in turn: start it, put a keep-alive load on it (HTTP,
c=10, 1 KiB, the load generator in its own process), attach ``py-spy record --nonblocking
--gil --format raw`` for the given time, then fold the stacks into:

- the top functions by self time;
- each hookwall addon's inclusive share (every sample with a frame in
  ``hookwall/<concern>/addon.py`` or ``hookwall/<concern>/addons/<name>.py``, including the
  library code it calls: structlog for the log, hmac for signing, ...), and that share
  turned into CPU microseconds per request using the proxy's CPU time per request measured
  over the same window (/proc);
- coarse groups: mitmproxy's addon dispatch, its HTTP/1 layers, asyncio, the socket
  syscalls, TLS, and the rest;
- each thread's CPU time per request, from /proc (the event loop versus the store's writer).

``--gil`` keeps only samples of the thread holding the GIL: without it py-spy also counts a
thread that is waiting to get the GIL back (the store's writer after every SQLite call) as
busy, which made the writer look several times as expensive as /proc says it is.

py-spy is looked up on PATH and in the venv (``.venv/bin/pip install py-spy``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.bench import (
    ROOT,
    SCENARIOS,
    VENV_BIN,
    Config,
    Scenario,
    cpu_seconds,
    environment,
    start_hookwall,
    start_mitmdump,
    stop_process,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# (group, predicate on the frame's file and function), first match wins for "self" grouping.
GROUPS: list[tuple[str, str]] = [
    ("hookwall core (destinations, signing, limits, policy, logs)", "/hookwall/"),
    ("structlog", "/structlog/"),
    ("mitmproxy addon dispatch (addonmanager, hooks)", "/mitmproxy/addonmanager.py"),
    ("mitmproxy HTTP/1 + layers", "/mitmproxy/proxy/"),
    ("mitmproxy http model / headers", "/mitmproxy/http.py"),
    ("mitmproxy other", "/mitmproxy/"),
    ("asyncio event loop + streams", "/asyncio/"),
    ("ssl", "/ssl.py"),
]


# The hook dispatchers: mitmproxy's AddonManager, and hookwall's cached one that replaces it.
DISPATCHERS = ("mitmproxy/addonmanager.py", "hookwall/mitm/dispatch.py")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread (user + system), keyed ``name/tid``: the event loop thread
    versus the delivery store's writer, which py-spy's samples cannot split fairly."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
            out[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def find_pyspy() -> str | None:
    return shutil.which("py-spy") or (
        str(VENV_BIN / "py-spy") if (VENV_BIN / "py-spy").exists() else None
    )


def parse_raw(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy raw (collapsed) output: one ``frame;frame;... count`` per line, root first."""
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        text, _, count = line.rpartition(" ")
        frames = []
        for raw in text.split(";"):
            match = _FRAME.match(raw)
            frames.append((match["func"], match["file"]) if match else (raw, ""))
        stacks.append((frames, int(count)))
    return stacks


_ADDON_FILE = re.compile(r"/hookwall/(\w+)/(?:addon\.py|addons/(\w+)\.py)$")


def addon_of(file: str) -> str | None:
    """The addon a source file is (``limits/addon.py``: "limits"; ``bounds/addons/bodycaps.py``:
    "bodycaps"), or None."""
    match = _ADDON_FILE.search(file)
    if match is None:
        return None
    return match[2] or match[1]


def fold(stacks: list[tuple[list[tuple[str, str]], int]]) -> dict[str, Any]:
    total = sum(count for _, count in stacks)
    self_time: Counter[str] = Counter()
    addons: Counter[str] = Counter()  # inclusive: any frame in the addon's file
    addons_own: Counter[str] = Counter()  # the innermost addon on the stack gets the sample
    groups: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    dispatch = 0  # under mitmproxy's AddonManager but not inside any addon's own code
    for frames, count in stacks:
        managers = [i for i, (_, f) in enumerate(frames) if f.endswith(DISPATCHERS)]
        if managers and not any(
            "/mitmproxy/addons/" in f or "/hookwall/" in f for _, f in frames[managers[-1] + 1 :]
        ):
            dispatch += count
        leaf_func, leaf_file = frames[-1]
        self_time[f"{leaf_func} ({short(leaf_file)})"] += count
        names = [a for _, f in frames if (a := addon_of(f))]
        for name in set(names):
            addons[name] += count
        if names:
            addons_own[names[-1]] += count
        for key in {f"{func} ({short(file)})" for func, file in frames}:
            inclusive[key] += count
        # Self-time groups: the leaf's group, except that time under a hookwall addon counts
        # for the addons whatever library it is in, and the delivery store's writer thread
        # is a group of its own.
        if any("/hookwall/deliveries/store/" in f for _, f in frames) and not names:
            groups["hookwall delivery store (writer thread: SQLite)"] += count
        elif names:
            groups["hookwall addons (inclusive)"] += count
        else:
            groups[group_of(leaf_file, leaf_func)] += count
    return {
        "samples": total,
        "self": self_time.most_common(25),
        "inclusive": inclusive.most_common(40),
        "addons": addons.most_common(),
        "addons_own": addons_own.most_common(),
        "groups": groups.most_common(),
        "dispatch": dispatch,
    }


def group_of(file: str, func: str) -> str:
    if not file:
        return "native / other"
    for name, marker in GROUPS:
        if marker in file:
            return name
    if "socket" in func or "send" in func or "recv" in func:
        return "socket syscalls"
    return "other Python (stdlib, libraries)"


def short(file: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def profile_one(
    config: Config,
    env: Any,
    pyspy: str,
    seconds: float,
    out_dir: Path,
    rate: int,
    scenario: Scenario = SCENARIOS[1],  # HTTP keep-alive, c=10, 1 KiB
) -> dict[str, Any]:
    assert config.pid is not None
    warmup = 2.0
    spec = config.spec(scenario, env, warmup, seconds + 2.0)
    load = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert load.stdout is not None
    assert load.stdout.readline().strip() == "measure-start"
    raw = out_dir / f"{config.name}-{scenario.key}.raw.txt"
    command = [
        pyspy, "record", "--pid", str(config.pid), "--duration", str(int(seconds)),
        "--rate", str(rate), "--nonblocking", "--gil", "--format", "raw", "--full-filenames",
        "--nolineno", "--output", str(raw),
    ]  # fmt: skip
    cpu0, t0 = cpu_seconds(config.pid), time.perf_counter()
    threads0 = thread_cpu(config.pid)
    spy = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    cpu1, t1 = cpu_seconds(config.pid), time.perf_counter()
    threads1 = thread_cpu(config.pid)
    lines = load.stdout.read().splitlines()
    load.wait(timeout=60)
    if spy.returncode != 0 or not raw.exists():
        raise RuntimeError(f"py-spy failed: {spy.stderr.strip()[-1000:]}")
    result = json.loads(lines[-1])
    rps = len(result["latencies_ms"]) / result["duration"]
    cpu_us_per_req = 1e6 * (cpu1 - cpu0) / ((t1 - t0) * rps) if rps else None
    folded = fold(parse_raw(raw))
    per_thread = {
        name: 1e6 * (threads1[name] - threads0.get(name, 0.0)) / ((t1 - t0) * rps)
        for name in threads1
        if rps and threads1[name] - threads0.get(name, 0.0) > 0.005
    }
    folded |= {
        "threads_cpu_us_per_req": per_thread,
        "command": command,
        "rps": rps,
        "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "cpu_us_per_req": cpu_us_per_req,
        "raw": str(raw),
    }
    return folded


def report(name: str, data: dict[str, Any]) -> None:
    total = data["samples"] or 1
    per_req = data["cpu_us_per_req"] or 0.0
    print(
        f"\n== {name}: {data['rps']:.0f} req/s under py-spy, proxy CPU {data['cpu_pct']:.0f}% "
        f"of a core, {per_req:.0f} us CPU per request, {data['samples']} samples"
    )
    for thread, us in sorted(data["threads_cpu_us_per_req"].items(), key=lambda kv: -kv[1]):
        print(f"  thread {thread}: {us:.0f} us CPU per request")
    print("top functions by self time (samples of the thread holding the GIL):")
    for func, count in data["self"][:15]:
        print(f"  {100 * count / total:5.1f}%  {func}")
    if data["addons"]:
        inclusive = dict(data["addons"])
        print("hookwall addons: own share (innermost addon on the stack), its CPU us per")
        print("request, and the inclusive share (including addons it calls, e.g. the log's sink):")
        for addon, count in data["addons_own"]:
            share = count / total
            print(
                f"  {100 * share:5.1f}%  {share * per_req:6.0f} us  "
                f"(incl. {100 * inclusive[addon] / total:4.1f}%)  {addon}"
            )
    print("groups (self time; code under a hookwall addon counted there):")
    for group, count in data["groups"]:
        print(f"  {100 * count / total:5.1f}%  {group}")
    share = data["dispatch"] / total
    print(
        f"hook dispatch, inclusive (mitmproxy's AddonManager or hookwall's cached one; not "
        f"the addons' own code): {100 * share:.1f}%, {share * per_req:.0f} us"
    )


def profile(args: argparse.Namespace) -> dict[str, Any]:
    pyspy = find_pyspy()
    if pyspy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    out_dir = Path(args.profile_out or tempfile.mkdtemp(prefix="hookwall-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    scenario = next(s for s in SCENARIOS if s.key == args.profile_scenario)
    print(f"profiling under load: {scenario.title}")
    with environment(args.asyncio_receiver) as env:
        for name in ("hookwall", "mitmdump"):
            if name == "hookwall":
                config = start_hookwall(env, env.tmp / "hookwall.log")
            else:
                config = start_mitmdump(env)
            try:
                results[config.name] = profile_one(
                    config, env, pyspy, args.profile_seconds, out_dir, 250, scenario
                )
            finally:
                stop_process(config.proc)
    for name, data in results.items():
        report(name, data)
    print(f"\npy-spy raw stacks kept in {out_dir}")
    return {"profile": results}
