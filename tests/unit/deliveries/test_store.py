"""The delivery store without a proxy: records, redaction, capture caps, retention, queries,
and the writer thread that must never make the proxy wait."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookwall.deliveries.logs import EXCHANGE_FIELDS
from hookwall.deliveries.store import (
    REDACTED,
    Filters,
    Record,
    Retention,
    Row,
    Store,
    StoreError,
    StoreWriter,
    build_record,
    capture,
    matches,
    parse_status,
    parse_time,
    redact_headers,
)
from hookwall.deliveries.store.schema import SCHEMA_VERSION

NOW = 1_800_000_000.0


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(EXCHANGE_FIELDS)
    base |= {
        "request_id": f"req_{fields.pop('n', 0):020x}",
        "method": "POST",
        "url": "http://hooks.acme.com/hook",
        "host": "hooks.acme.com",
        "port": 80,
        "decision": "allow",
        "status": 200,
        "signed": False,
        "key_ids": [],
        "resolved_ips": ["203.0.113.7"],
        "duration_ms": 12.5,
        "request_bytes": 2,
        "response_bytes": 2,
    }
    return base | fields


def record(ts: float = NOW, body: bytes | None = b"{}", cap: int = 65536, **fields: Any) -> Record:
    return build_record(
        ts,
        event(**fields),
        request_headers=[("Content-Type", "application/json")],
        request_body=body,
        response_headers=[("Content-Type", "application/json")],
        response_body=b"{}",
        capture_body=cap,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "deliveries.db")
    yield s
    s.close()


# -- records -----------------------------------------------------------------------------------
def test_a_row_reads_back_as_the_logged_event_plus_what_was_captured(store: Store) -> None:
    ev = event(n=1, webhook_id="msg_1", key_ids=["hmac:abc"], signed="standard-webhooks")
    ev["a_future_field"] = {"nested": [1, 2]}  # stored without a schema change
    rec = build_record(
        NOW,
        ev,
        request_headers=[("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b")],
        request_body=b'{"type": "invoice.paid"}',
        response_headers=None,
        response_body=None,
        capture_body=1024,
    )
    assert store.insert([rec]) == 1
    row = store.get(ev["request_id"])
    assert row is not None
    assert row.ts == NOW
    assert row.event == ev  # every field, in the log line's order
    assert list(row.event)[: len(EXCHANGE_FIELDS)] == [k for k in EXCHANGE_FIELDS if k in ev]
    assert row.request_headers == [
        ("Content-Type", "application/json"),
        ("X-Multi", "a"),
        ("X-Multi", "b"),
    ]
    assert row.request_body == b'{"type": "invoice.paid"}'
    assert row.response_headers is None and row.response_body is None
    assert store.get(str(row.id)) == row  # by row number too
    assert store.get("req_nope") is None


def test_credentials_and_signatures_are_redacted_names_kept() -> None:
    headers = [
        ("Authorization", "Bearer tok_live_123"),
        ("Proxy-Authorization", "Basic eDp5"),
        ("Cookie", "session=abc"),
        ("Set-Cookie", "id=1"),
        ("webhook-signature", "v1,AAAA"),
        ("svix-signature", "v1,BBBB"),
        ("X-Hub-Signature", "sha1=cc"),
        ("X-Hub-Signature-256", "sha256=dd"),
        ("Stripe-Signature", "t=1,v1=ee"),
        ("X-Api-Key", "k"),
        ("X-Convoy-Sig", "ff"),  # owned by the destination's hmac scheme
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", "1700000000"),
        ("Content-Type", "application/json"),
    ]
    out = dict(redact_headers(headers, owned=("x-convoy-sig", "webhook-id", "webhook-timestamp")))
    secret = [n for n, _ in headers[:11]]
    assert all(out[name] == REDACTED for name in secret)
    assert out["webhook-id"] == "msg_1"
    assert out["webhook-timestamp"] == "1700000000"
    assert out["Content-Type"] == "application/json"


def test_capture_cap_and_truncation_flag() -> None:
    assert capture(b"0123456789", 4) == (b"0123", True)
    assert capture(b"0123", 4) == (b"0123", False)
    assert capture(b"0123", 0) == (None, False)  # capture off
    assert capture(b"", 0) == (b"", False)  # nothing to lose
    assert capture(None, 100) == (None, False)  # never seen (passthrough, refused early)


def test_capture_is_stored_with_its_flag(store: Store) -> None:
    store.insert([record(n=1, body=b"x" * 100, cap=10), record(n=2, body=b"y" * 100, cap=0)])
    cut, off = store.get("req_" + f"{1:020x}"), store.get("req_" + f"{2:020x}")
    assert cut is not None and off is not None
    assert (cut.request_body, cut.request_truncated) == (b"x" * 10, True)
    assert (off.request_body, off.request_truncated) == (None, False)


# -- schema ------------------------------------------------------------------------------------
def test_store_is_wal_versioned_and_private(tmp_path: Path) -> None:
    path = tmp_path / "d" / "deliveries.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    conn.close()
    assert path.stat().st_mode & 0o077 == 0
    Store.open(path).close()  # reopening an existing store is fine


def test_a_newer_or_corrupt_store_is_refused_clearly(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this hookwall"):
        Store.open(newer)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(StoreError, match="unusable"):
        Store.open(corrupt)
    with pytest.raises(StoreError, match="no delivery store"):
        Store.open_readonly(tmp_path / "missing.db")


# -- retention ---------------------------------------------------------------------------------
def test_retention_by_age(store: Store) -> None:
    store.insert([record(NOW - 3 * 86400 + i, n=i) for i in range(12_000)])  # > one chunk
    store.insert([record(NOW - 60, n=20_000 + i) for i in range(10)])
    result = store.enforce_retention(max_age=86400, max_size=1 << 40, now=NOW)
    assert result.deleted_by_age == 12_000 and result.deleted_by_size == 0
    assert store.count() == 10


def test_retention_by_size_keeps_the_newest_and_shrinks_the_file(store: Store) -> None:
    store.insert([record(NOW + i, n=i, body=bytes(8000)) for i in range(400)])  # ~3.2 MB
    wal = store.path.with_name(store.path.name + "-wal")
    before = store.path.stat().st_size + wal.stat().st_size
    assert store.used_bytes() > 3_000_000
    result = store.enforce_retention(max_age=1e9, max_size=1_000_000, now=NOW)
    assert result.deleted_by_size > 0
    assert store.used_bytes() <= 1_000_000
    newest = store.query(Filters(), limit=1)[0]
    assert newest.event["request_id"] == f"req_{399:020x}"
    assert store.count() == 400 - result.deleted_by_size
    after = store.path.stat().st_size + wal.stat().st_size
    assert after < before / 2  # pages given back (incremental vacuum, WAL truncated)


# -- queries -----------------------------------------------------------------------------------
@pytest.fixture
def filled(store: Store) -> Store:
    rows = [
        record(NOW - 7200, n=1, host="hooks.acme.com", status=200, webhook_id="msg_a"),
        record(NOW - 3600, n=2, host="eu.hooks.acme.com", status=503, webhook_id="msg_a",
               decision="deny", reason="circuit-open", sender="billing"),
        record(NOW - 1800, n=3, host="hooks.acme.com", status=500, webhook_id="msg_a",
               url="http://hooks.acme.com/stripe/events?x=1"),
        record(NOW - 600, n=4, host="other.example", status=404, sender="billing"),
        record(NOW - 60, n=5, host="other.example", status=403, decision="deny",
               reason="address-blocked", url="http://other.example/admin"),
        record(NOW - 30, n=6, host="acme.com", status=201),
    ]  # fmt: skip
    store.insert(rows)
    return store


def ids(rows: list[Row]) -> list[int]:
    return [int(r.event["request_id"][4:], 16) for r in rows]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(), [1, 2, 3, 4, 5, 6]),
        (Filters(host="hooks.acme.com"), [1, 3]),
        (Filters(host="*.acme.com"), [1, 2, 3]),  # not acme.com itself
        (Filters(host="*acme.com"), [1, 2, 3, 6]),
        (Filters(host="HOOKS.ACME.COM."), [1, 3]),
        (Filters(host="other.*"), [4, 5]),
        (Filters(host="*.hooks.*"), [2]),
        (Filters(status=parse_status("5xx")), [2, 3]),
        (Filters(status=parse_status("4xx")), [4, 5]),
        (Filters(status=parse_status("200")), [1]),
        (Filters(status=parse_status("2xx")), [1, 6]),
        (Filters(status=parse_status("denied")), [2, 5]),
        (Filters(status=parse_status("5xx,denied")), [2, 3, 5]),
        (Filters(reason="circuit-open"), [2]),
        (Filters(sender="billing"), [2, 4]),
        (Filters(webhook_id="msg_a"), [1, 2, 3]),
        (Filters(since=NOW - 3600), [2, 3, 4, 5, 6]),
        (Filters(until=NOW - 1800), [1, 2]),
        (Filters(path="/stripe/*"), [3]),
        (Filters(path="/hook"), [1, 2, 4, 6]),
        # combinations
        (Filters(host="*.acme.com", since=NOW - 5000, status=parse_status("5xx")), [2, 3]),
        (Filters(host="hooks.acme.com", status=parse_status("5xx")), [3]),
        (Filters(sender="billing", status=parse_status("denied")), [2]),
        (Filters(webhook_id="msg_a", until=NOW - 3000), [1, 2]),
    ],
)
def test_filters(filled: Store, filters: Filters, expected: list[int]) -> None:
    assert ids(filled.query(filters, limit=None)) == expected
    # The JSON-log-file path (--file) means the same thing.
    on_file = [
        int(r.event["request_id"][4:], 16)
        for r in filled.iter_all()
        if matches(r.event, r.ts, filters)
    ]
    assert on_file == expected


def test_limit_gives_the_newest_oldest_first_and_follow_reads_by_id(filled: Store) -> None:
    assert ids(filled.query(Filters(), limit=2)) == [5, 6]
    last = filled.query(Filters(), limit=2)[-1].id
    filled.insert([record(NOW, n=7), record(NOW, n=8, status=500)])
    assert ids(filled.query(Filters(), after_id=last)) == [7, 8]
    assert ids(filled.query(Filters(status=parse_status("5xx")), after_id=last)) == [8]


def test_related_attempts(filled: Store) -> None:
    filled.insert([record(NOW, n=9, webhook_id=None, replay_of=f"req_{4:020x}")])
    row = filled.get(f"req_{3:020x}")
    assert row is not None
    assert ids(filled.related(row)) == [1, 2, 3]
    replayed = filled.get(f"req_{4:020x}")
    assert replayed is not None
    assert ids(filled.related(replayed)) == [4, 9]
    replay = filled.get(f"req_{9:020x}")
    assert replay is not None
    assert ids(filled.related(replay)) == [4, 9]


def test_common_queries_use_indexes(filled: Store) -> None:
    def plan(filters: Filters) -> str:
        return " | ".join(filled.explain(filters))

    assert "ix_webhook_id" in plan(Filters(webhook_id="msg_a"))
    assert "ix_host_rev_ts" in plan(Filters(host="*.acme.com"))
    assert "ix_host_ts" in plan(Filters(host="hooks.acme.com", since=NOW - 3600))
    assert "ix_reason_ts" in plan(Filters(reason="circuit-open"))
    assert "ix_status_class_ts" in plan(Filters(status=parse_status("5xx")))
    assert "ix_denied_ts" in plan(Filters(status=parse_status("denied")))
    latest = plan(Filters())
    assert "USING INDEX ix_ts" in latest and "TEMP B-TREE" not in latest  # no sort


def test_parse_time_and_status() -> None:
    assert parse_time("2h", NOW) == NOW - 7200
    assert parse_time("1d", NOW) == NOW - 86400
    assert parse_time("1w", NOW) == NOW - 7 * 86400
    assert parse_time("90s", NOW) == NOW - 90
    assert parse_time("2026-11-28T00:00:00Z", NOW) == parse_time("2026-11-28", NOW)
    assert parse_time("2026-11-28T01:00:00+01:00", NOW) == parse_time("2026-11-28", NOW)
    for bad in ("yesterday", "2h ago", ""):
        with pytest.raises(ValueError, match="invalid time"):
            parse_time(bad, NOW)
    for bad in ("6xx", "abc", "99"):
        with pytest.raises(ValueError, match="invalid status"):
            parse_status(bad)


# -- the writer thread -------------------------------------------------------------------------
class Reports:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.arrived = threading.Event()

    def __call__(self, name: str, fields: dict[str, object]) -> None:
        self.events.append((name, fields))
        self.arrived.set()

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def keep_all() -> Retention:
    return Retention(max_age=1e12, max_size=1 << 40)


def test_a_full_queue_drops_and_counts_and_never_blocks(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "d.db", keep_all, Reports(), queue_size=3)
    # Not started: nothing drains the queue. A blocking put would hang this test.
    started = time.monotonic()
    accepted = [writer.submit(record(n=i)) for i in range(10)]
    assert time.monotonic() - started < 1.0
    assert accepted == [True] * 3 + [False] * 7
    assert writer.take_dropped() == 7
    assert writer.take_dropped() == 0
    assert writer.dropped_total == 7


def test_writer_batches_and_flushes_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    reports = Reports()
    writer = StoreWriter(path, keep_all, reports, batch_size=7)
    writer.start()
    for i in range(100):
        assert writer.submit(record(NOW + i, n=i))
    writer.stop()
    assert writer.written == 100 and writer.failed == 0
    assert reports.events == []
    reader = Store.open_readonly(path)
    assert reader.count() == 100
    reader.close()


def test_no_record_is_lost_between_a_busy_producer_and_the_writer(tmp_path: Path) -> None:
    """The hand-off takes no lock: records submitted while a batch is being taken or
    written must land in this batch or the next, never nowhere."""
    path = tmp_path / "d.db"
    writer = StoreWriter(path, keep_all, Reports(), batch_size=50, batch_delay=0.001)
    writer.start()
    submitted = 0
    for i in range(3000):
        submitted += writer.submit(record(NOW + i, n=i))
        if i % 97 == 0:
            time.sleep(0)  # let the writer take a batch mid-stream
    writer.stop(timeout=30)
    assert submitted == 3000 - writer.dropped_total
    assert writer.written == submitted and writer.failed == 0
    assert writer._queued_bytes == 0
    reader = Store.open_readonly(path)
    assert reader.count() == submitted
    reader.close()


def test_writer_enforces_retention_when_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = Store.open(path)
    store.insert([record(time.time() - 10 * 86400, n=1), record(time.time(), n=2)])
    store.close()
    writer = StoreWriter(path, lambda: Retention(max_age=86400, max_size=1 << 40), Reports())
    writer.start()
    writer.stop()
    reader = Store.open_readonly(path)
    assert ids(reader.query(Filters(), limit=None)) == [2]
    reader.close()


def test_a_corrupt_store_is_reported_and_records_are_let_go(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    path.write_bytes(b"garbage" * 1000)
    reports = Reports()
    writer = StoreWriter(path, keep_all, reports)
    writer.start()
    assert writer.submit(record(n=1))
    writer.stop()
    assert reports.names() == ["store_unavailable"]
    assert "unusable" in str(reports.events[0][1]["error"])
    assert writer.failed == 1 and writer.written == 0


def test_a_locked_store_loses_a_batch_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    Store.open(path).close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    reports = Reports()
    writer = StoreWriter(path, keep_all, reports, busy_timeout=0.05)
    writer.start()
    writer.submit(record(n=1))
    assert reports.arrived.wait(10)
    assert "store_error" in reports.names()
    assert "locked" in str(reports.events[-1][1]["error"])
    locker.execute("ROLLBACK")
    locker.close()
    writer.submit(record(n=2))
    writer.stop()
    reader = Store.open_readonly(path)
    assert 2 in ids(reader.query(Filters(), limit=None))
    reader.close()


def test_the_queue_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    """Captured bodies can be large: a stalled disk must not fill the proxy's memory."""
    writer = StoreWriter(tmp_path / "d.db", keep_all, Reports(), queue_bytes=12_000)
    accepted = [writer.submit(record(n=i, body=bytes(4000))) for i in range(5)]
    assert accepted == [True, True, False, False, False]
    assert writer.submit(record(n=9, body=b"{}"))  # a small one still fits
    writer.start()
    writer.stop()
    assert writer.written == 3
    assert writer._queued_bytes == 0


def test_the_proxy_side_reports_drops_as_one_warning(tmp_path: Path) -> None:
    """The adapter: a full queue costs the event loop nothing but a count and one event."""
    import asyncio

    import structlog

    from hookwall.deliveries.addons.store import DeliveryStore
    from hookwall.destinations.resolver import Resolver
    from hookwall.flow.runtime import Runtime
    from hookwall.policy import load_default_policy

    writer = StoreWriter(tmp_path / "d.db", keep_all, Reports(), queue_size=1)
    runtime = Runtime(load_default_policy(), Resolver([("127.0.0.1", 9)]))
    adapter = DeliveryStore(runtime, tmp_path, writer=writer)

    async def burst() -> None:
        adapter._loop = asyncio.get_running_loop()  # as running() does, without the thread
        for i in range(4):
            adapter.record(None, event(n=i))  # a refused TLS handshake: no flow
        assert adapter._drop_report is not None  # one report scheduled for the burst
        adapter._drop_report.cancel()
        adapter._report_drops()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(burst())
    dropped = [e for e in logs if e["event"] == "store_dropped"]
    assert len(dropped) == 1
    assert dropped[0]["dropped"] == 3 and dropped[0]["log_level"] == "warning"


def test_values_orjson_refuses_are_stored_too(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "d.db")
    store.insert([record(n=1, huge=2**70, odd={1: "one"})])
    (row,) = store.query(Filters(), limit=None)
    assert row.event["huge"] == 2**70 and row.event["odd"] == {"1": "one"}
    store.close()


def test_a_batch_is_written_early_once_its_bodies_add_up(tmp_path: Path) -> None:
    """Batches gather for up to batch_delay, but large bodies must not sit in memory that
    long: batch_bytes worth of queued records is written at once."""
    writer = StoreWriter(
        tmp_path / "d.db", keep_all, Reports(), batch_delay=60.0, batch_bytes=16_000
    )
    writer.start()
    try:
        assert writer.submit(record(n=1, body=bytes(1000)))
        assert writer.submit(record(n=2, body=bytes(20_000)))  # over batch_bytes
        deadline = time.monotonic() + 10
        while writer.written < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling an outcome, bounded; the 60 s delay is the failure
        assert writer.written == 2
    finally:
        writer.stop()
