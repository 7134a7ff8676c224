"""The store's writer thread: the proxy hands records over and never waits on disk.

``submit`` is a non-blocking put into a queue bounded in records and in bytes (captured
bodies can be large); when it is full (the disk is slow, the store is locked) the record is
dropped and counted, and the caller reports the count. The thread takes records in batches
(one transaction per batch), enforces retention every ``maintenance_interval`` seconds, and
survives every store error: it reports the problem and keeps going (the JSON log lines on
stdout are unaffected either way).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hookwall.store.db import Store, StoreError
from hookwall.store.record import Record

# (event name, fields): how the writer tells the proxy about problems (called on its thread).
Reporter = Callable[[str, dict[str, object]], None]


@dataclass(frozen=True, slots=True)
class Retention:
    max_age: float  # seconds
    max_size: int  # bytes


class StoreWriter:
    def __init__(
        self,
        path: Path,
        retention: Callable[[], Retention],
        report: Reporter,
        *,
        queue_size: int = 10_000,
        queue_bytes: int = 64 * 1024 * 1024,
        batch_size: int = 500,
        batch_delay: float = 0.05,
        maintenance_interval: float = 60.0,
        reopen_interval: float = 60.0,
        busy_timeout: float = 2.0,
    ) -> None:
        self.path = path
        self.retention = retention
        self.report = report
        self.batch_size = batch_size
        self.batch_delay = batch_delay
        self.maintenance_interval = maintenance_interval
        self.reopen_interval = reopen_interval
        self.busy_timeout = busy_timeout
        self.queue: queue.Queue[Record | None] = queue.Queue(maxsize=queue_size)
        self.queue_bytes = queue_bytes
        self._queued_bytes = 0  # bodies waiting in the queue (guarded by _lock)
        self._lock = threading.Lock()
        self.dropped = 0  # records refused because the queue was full (since the last take)
        self.dropped_total = 0
        self.written = 0
        self.failed = 0  # records lost to store errors
        self.available = True  # False while the store cannot be opened
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    # -- the proxy's side (event loop thread) --------------------------------------------------
    def submit(self, record: Record) -> bool:
        """Queue a record without ever blocking; False (and counted) when the queue is full."""
        size = _size(record)
        with self._lock:
            fits = self._queued_bytes + size <= self.queue_bytes
            if fits:
                self._queued_bytes += size
        if fits:
            try:
                self.queue.put_nowait(record)
                return True
            except queue.Full:
                self._release([record])
        self.dropped += 1
        self.dropped_total += 1
        return False

    def _release(self, records: list[Record]) -> None:
        size = sum(_size(record) for record in records)
        with self._lock:
            self._queued_bytes -= size

    def take_dropped(self) -> int:
        """How many records were dropped since the last call."""
        count, self.dropped = self.dropped, 0
        return count

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hookwall-store", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (bounded by ``timeout``) and close the store."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        while True:  # the sentinel must get in even when the queue is full
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline or not self._thread.is_alive():
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))

    # -- the writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        self._open()
        next_maintenance = time.monotonic()  # once at start, then periodically
        while True:
            now = time.monotonic()
            if now >= next_maintenance:
                if self._store is None:
                    self._open()
                self._maintain()
                next_maintenance = now + (
                    self.maintenance_interval if self._store else self.reopen_interval
                )
            try:
                first = self.queue.get(timeout=max(0.01, next_maintenance - time.monotonic()))
            except queue.Empty:
                continue
            batch: list[Record] = []
            stop = first is None
            if first is not None:
                batch.append(first)
            # Gather for up to batch_delay: one commit per batch, not one per exchange.
            gather_until = time.monotonic() + self.batch_delay
            while not stop and len(batch) < self.batch_size:
                try:
                    item = self.queue.get(timeout=max(0.0, gather_until - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            self._write(batch)
            if stop:
                self._drain_and_close()
                return

    def _drain_and_close(self) -> None:
        rest: list[Record] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        for start in range(0, len(rest), self.batch_size):
            self._write(rest[start : start + self.batch_size])
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> None:
        try:
            self._store = Store.open(self.path, busy_timeout=self.busy_timeout)
        except StoreError as exc:
            self._store = None
            if self.available:  # report once per outage, not on every retry
                self.report(
                    "store_unavailable",
                    {
                        "path": str(self.path),
                        "error": str(exc),
                        "hint": "deliveries go on and are logged to stdout; "
                        "hookwall logs cannot show them until the store is fixed",
                    },
                )
            self.available = False
        else:
            if not self.available:
                self.report("store_available", {"path": str(self.path)})
            self.available = True

    def _write(self, batch: list[Record]) -> None:
        if not batch:
            return
        self._release(batch)
        if self._store is None:
            self.failed += len(batch)
            return
        try:
            self.written += self._store.insert(batch)
        except Exception as exc:  # locked, disk full, corrupt page: never fatal
            self.failed += len(batch)
            self.report(
                "store_error",
                {"path": str(self.path), "error": str(exc), "lost": len(batch)},
            )

    def _maintain(self) -> None:
        if self._store is None:
            return
        retention = self.retention()
        try:
            result = self._store.enforce_retention(
                max_age=retention.max_age, max_size=retention.max_size
            )
        except Exception as exc:
            self.report("store_error", {"path": str(self.path), "error": str(exc)})
            return
        if result.deleted_by_size:
            self.report(
                "store_trimmed",
                {
                    "path": str(self.path),
                    "deleted": result.deleted_by_size,
                    "max_size": retention.max_size,
                    "hint": "the store reached logging.max_size before logging.retention; "
                    "older deliveries were removed early",
                },
            )


def _size(record: Record) -> int:
    """What a queued record costs in memory, roughly: its bodies plus the rest."""
    return len(record.request_body or b"") + len(record.response_body or b"") + 1024
