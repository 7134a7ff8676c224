"""This checkout against another (the commit before a change), one process at a time.

``bench.bench --baseline`` runs both side by side, and on a 2-core VM the two proxies compete
for the cores the load generator and receiver also need: a run of the same code against
itself shows ratios of 0.9 to 1.1 from position alone. Here only one hookwall runs at a time,
started afresh for each measurement, and the two alternate (A B A B ...), so a drift of the
machine's speed falls on both. It reports the proxy's CPU time per request (what a change to
the request path costs) and the throughput, medians over the rounds, and their ratios.

    git worktree add /tmp/base HEAD~1
    .venv/bin/python -m bench.ab --baseline /tmp/base/src --rounds 6 --scenario http-ka-c10-1k
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.bench import ROOT, SCENARIOS, environment, measure, start_hookwall, stop_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, metavar="SRC")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--scenario", action="append", help="scenario keys (default: two)")
    args = parser.parse_args(argv)
    wanted = args.scenario or ["http-ka-c1-1k", "http-ka-c10-1k"]
    scenarios = [s for s in SCENARIOS if s.key in wanted]
    sources = {"this": ROOT / "src", "baseline": args.baseline}
    cpu: dict[tuple[str, str], list[float]] = {}
    rps: dict[tuple[str, str], list[float]] = {}
    with environment(force_asyncio=False) as env:
        for round_ in range(args.rounds):
            order = list(sources.items())
            if round_ % 2:
                order.reverse()  # A B, then B A: neither is always first after a start
            for name, source in order:
                config = start_hookwall(env, env.tmp / f"{name}.log", name, (), name, source)
                try:
                    for scenario in scenarios:
                        cell = measure(env, config, scenario, round_, args.warmup, args.duration)
                        if cell.proxy_cpu_us_per_req is not None:
                            cpu.setdefault((scenario.key, name), []).append(
                                cell.proxy_cpu_us_per_req
                            )
                        rps.setdefault((scenario.key, name), []).append(cell.rps)
                finally:
                    stop_process(config.proc)
            print(f"  round {round_ + 1}/{args.rounds} done", flush=True)
    print(f"\n{'scenario':<18}{'CPU us this':>12}{'baseline':>10}{'ratio':>8}{'thr ratio':>11}")
    for scenario in scenarios:
        this_cpu = statistics.median(cpu[(scenario.key, "this")])
        base_cpu = statistics.median(cpu[(scenario.key, "baseline")])
        this_rps = statistics.median(rps[(scenario.key, "this")])
        base_rps = statistics.median(rps[(scenario.key, "baseline")])
        print(
            f"{scenario.key:<18}{this_cpu:>12.0f}{base_cpu:>10.0f}"
            f"{this_cpu / base_cpu:>8.2f}{this_rps / base_rps:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
