"""How fast are `hookwall logs` queries on a big delivery store?

Builds a store of --rows synthetic exchanges (default 1,000,000: a week of ~1.7 deliveries a
second, with retries, refusals and captured bodies) in a temporary directory, through the same
``Store`` class the proxy writes with, then times the common queries: the median and the worst
of --repeat runs each, with the number of rows returned and the index SQLite chose.

    .venv/bin/python -m bench.store_queries [--rows 1000000] [--repeat 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hookwall.deliveries.logs import EXCHANGE_FIELDS
from hookwall.deliveries.store import Filters, Record, Store, build_record, parse_status, store_path

WEEK = 7 * 86400
REASONS = (
    ("address-blocked", 403),
    ("circuit-open", 503),
    ("queue-timeout", 503),
    ("response-timeout", 504),
    ("upstream-error", 502),
    ("rate-limited", 429),
)
EVENT_TYPES = ("invoice.paid", "invoice.created", "customer.updated", "charge.refunded")


def hosts(rng: random.Random) -> Callable[[], str]:
    """1,500 customer hosts with a long tail, plus acme's three (3% of the traffic)."""
    customers = [f"hooks.c{n}.example.com" for n in range(1500)]
    cumulative = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(1500)))
    acme = ["hooks.acme.com", "eu.hooks.acme.com", "us.hooks.acme.com"]

    def pick() -> str:
        if rng.random() < 0.03:
            return rng.choice(acme)
        return rng.choices(customers, cum_weights=cumulative)[0]

    return pick


def synthetic(count: int, now: float, seed: int = 7) -> Iterator[Record]:
    rng = random.Random(seed)
    pick_host = hosts(rng)
    senders = [f"service-{n}" for n in range(30)]
    recent: list[str] = []
    step = WEEK / count
    for i in range(count):
        ts = now - WEEK + i * step + rng.random() * step
        host = pick_host()
        if recent and rng.random() < 0.15:  # a retry of a recent event
            webhook = rng.choice(recent)
        else:
            webhook = f"msg_{i:08d}{rng.getrandbits(40):010x}"
            recent.append(webhook)
            if len(recent) > 1000:
                recent.pop(0)
        roll = rng.random()
        decision, reason, status = "allow", None, rng.choice((200, 200, 200, 201, 204))
        if roll < 0.03:
            status = rng.choice((400, 404, 410))
        elif roll < 0.06:
            status = rng.choice((500, 502, 503))
        elif roll < 0.10:
            decision, (reason, status) = "deny", rng.choice(REASONS)
        path = rng.choice(("/hooks", "/hooks/stripe/events", "/webhooks/github", "/api/events"))
        body = json.dumps(
            {
                "type": rng.choice(EVENT_TYPES),
                "id": webhook,
                "timestamp": int(ts),
                "data": {"object": "invoice", "amount": rng.randrange(100, 100_000),
                         "customer": f"cus_{rng.getrandbits(48):012x}", "note": "x" * 120},
            }
        ).encode()  # fmt: skip
        event = dict.fromkeys(EXCHANGE_FIELDS) | {
            "request_id": f"req_{rng.getrandbits(80):020x}",
            "sender": rng.choice(senders),
            "client": f"10.0.{i % 256}.{i % 200}:{40000 + i % 20000}",
            "method": "POST",
            "url": f"https://{host}{path}",
            "host": host,
            "port": 443,
            "rule": host if "acme" in host else None,
            "resolved_ips": ["203.0.113.7"],
            "peer_ip": "203.0.113.7" if decision == "allow" else None,
            "decision": decision,
            "reason": reason,
            "status": status,
            "webhook_id": webhook,
            "signed": "standard-webhooks" if decision == "allow" else False,
            "key_ids": ["hmac:3f9a0c1d2e4b"] if decision == "allow" else [],
            "attempt": 1,
            "queue_ms": 0.0,
            "dns_ms": 1.2,
            "connect_ms": 3.4,
            "ttfb_ms": 25.0,
            "duration_ms": round(rng.uniform(5, 400), 3),
            "request_bytes": len(body),
            "response_bytes": 12,
        }
        yield build_record(
            ts,
            event,
            request_headers=[
                ("Host", host),
                ("Content-Type", "application/json"),
                ("User-Agent", "billing/2.3"),
                ("webhook-id", webhook),
                ("webhook-timestamp", str(int(ts))),
                ("webhook-signature", "v1,placeholder"),
                ("Content-Length", str(len(body))),
            ],
            request_body=body,
            response_headers=[("Content-Type", "application/json"), ("Content-Length", "12")],
            response_body=b'{"ok": true}',
            capture_body=64 * 1024,
        )


def build(path: Path, rows: int, now: float) -> float:
    store = Store.open(path)
    started = time.perf_counter()
    batch: list[Record] = []
    for record in synthetic(rows, now):
        batch.append(record)
        if len(batch) == 10_000:
            store.insert(batch)
            batch.clear()
    store.insert(batch)
    store.conn.execute("ANALYZE")
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the store in DIR and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hookwall-bench-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = store_path(directory)
        path.unlink(missing_ok=True)
        now = time.time()
        print(f"building a store of {args.rows:,} exchanges in {path} ...", flush=True)
        seconds = build(path, args.rows, now)
        size = path.stat().st_size
        print(
            f"built in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s, batches of 10,000); "
            f"file {size / 1024**2:,.0f} MiB ({size / args.rows:,.0f} bytes/row)\n"
        )

        store = Store.open_readonly(path)
        newest = store.query(Filters(), limit=1)[0]
        retried = store.conn.execute(
            "SELECT webhook_id FROM exchanges WHERE webhook_id IS NOT NULL "
            "GROUP BY webhook_id HAVING count(*) > 2 LIMIT 1"
        ).fetchone()[0]
        day, two_hours, hour = now - 86400, now - 7200, now - 3600

        cases: list[tuple[str, Filters]] = [
            ("latest 50 (no filter)", Filters()),
            ("--host hooks.acme.com --since 1d --status 5xx",
             Filters(host="hooks.acme.com", since=day, status=parse_status("5xx"))),
            ("--host '*.acme.com' --since 1d", Filters(host="*.acme.com", since=day)),
            ("--host hooks.c42.example.com", Filters(host="hooks.c42.example.com")),
            ("--host 'hooks.c4*' --since 1d", Filters(host="hooks.c4*", since=day)),
            (f"--webhook-id {retried}", Filters(webhook_id=retried)),
            ("--status 5xx", Filters(status=parse_status("5xx"))),
            ("--status 4xx --since 1d", Filters(status=parse_status("4xx"), since=day)),
            ("--status denied --since 2h",
             Filters(status=parse_status("denied"), since=two_hours)),
            ("--reason circuit-open", Filters(reason="circuit-open")),
            ("--sender service-7 --since 1d", Filters(sender="service-7", since=day)),
            ("--path '/hooks/stripe/*' --since 1h",
             Filters(path="/hooks/stripe/*", since=hour)),
            ("--host hooks.c1499.example.com --status 5xx (rare)",
             Filters(host="hooks.c1499.example.com", status=parse_status("5xx"))),
        ]  # fmt: skip
        width = max(len(name) for name, _ in cases) + 2
        print(f"{'query (limit 50)':<{width}} {'median ms':>10} {'max ms':>8} {'rows':>5}  plan")
        for name, filters in cases:
            median, worst, rows = timed(
                functools.partial(store.query, filters, limit=50), args.repeat
            )
            plan = "; ".join(p for p in store.explain(filters) if "INDEX" in p or "SCAN" in p)
            count = len(rows) if isinstance(rows, list) else 0
            print(f"{name:<{width}} {median:>10.2f} {worst:>8.2f} {count:>5}  {plan}")

        request_id = newest.request_id or ""
        median, worst, _ = timed(lambda: store.related(store.get(request_id)), args.repeat)  # type: ignore[arg-type]
        print(f"{'logs show ID (row + its attempts)':<{width}} {median:>10.2f} {worst:>8.2f}")
        last = store.last_id()
        median, worst, _ = timed(
            lambda: store.query(Filters(), limit=1000, after_id=last - 10), args.repeat
        )
        print(f"{'--follow poll (new rows by id)':<{width}} {median:>10.2f} {worst:>8.2f}")
        store.close()

        writer = Store.open(path)
        started = time.perf_counter()
        result = writer.enforce_retention(max_age=WEEK - 3600, max_size=1 << 40, now=now)
        sweep = (time.perf_counter() - started) * 1000
        print(
            f"\nretention sweep: {result.deleted_by_age:,} rows older than the retention "
            f"(one hour's worth) deleted in {sweep:.0f} ms"
        )
        writer.close()


if __name__ == "__main__":
    main()
