"""The store's writer thread: the proxy hands records over and never waits on disk.

``submit`` is a non-blocking append to a queue bounded in records and in bytes (captured
bodies can be large); when it is full (the disk is slow, the store is locked) the record is
dropped and counted, and the caller reports the count. The thread takes records in batches
(one transaction per batch), enforces retention every ``maintenance_interval`` seconds, and
survives every store error: it reports the problem and keeps going (the JSON log lines on
stdout are unaffected either way).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hookwall.deliveries.store.db import Store, StoreError
from hookwall.deliveries.store.record import Record

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
        # Up to a second for a batch to gather: a transaction rewrites the last page of the
        # table and of each index, so small batches multiply the bytes written (measured:
        # 9.1 KiB and 51 us of CPU per row in batches of 30, 5.0 KiB and 33 us in batches
        # of 500), and on a VM that I/O slows the proxy itself. `hookwall logs` sees a
        # delivery at most this late; the JSON log line is written at once.
        batch_delay: float = 1.0,
        # ...but no longer than it takes for this many bytes of captured bodies to wait:
        # large bodies would otherwise hold tens of MiB in memory for that second.
        batch_bytes: int = 4 * 1024 * 1024,
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
        self.queue_size = queue_size
        self.batch_bytes = batch_bytes
        self.queue_bytes = queue_bytes
        # The hand-off. deque.append/popleft are atomic, so the proxy's side takes no lock
        # and wakes the writer once per batch, not once per record: a per-record
        # queue.Queue put (lock, notify, a thread switch) cost the event loop more than the
        # rest of the store did (bench/PROFILE.md).
        self._records: collections.deque[Record] = collections.deque()
        self._wake = threading.Event()  # set by submit when the writer should look
        self._stopping = threading.Event()
        self._full = threading.Event()  # a batch is ready: stop gathering (also set by stop)
        # Bytes of bodies waiting: each counter is written by one thread only.
        self._submitted_bytes = 0  # the submitting thread
        self._taken_bytes = 0  # the writer thread
        self.dropped = 0  # records refused because the queue was full (since the last take)
        self.dropped_total = 0
        self.written = 0
        self.failed = 0  # records lost to store errors
        self.available = True  # False while the store cannot be opened
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    # -- the proxy's side (event loop thread) --------------------------------------------------
    @property
    def _queued_bytes(self) -> int:
        return self._submitted_bytes - self._taken_bytes

    def submit(self, record: Record) -> bool:
        """Queue a record without ever blocking; False (and counted) when the queue is full."""
        size = _size(record)
        if len(self._records) >= self.queue_size or self._queued_bytes + size > self.queue_bytes:
            self.dropped += 1
            self.dropped_total += 1
            return False
        self._submitted_bytes += size
        self._records.append(record)
        if not self._wake.is_set():  # a plain read; only the first record of a batch sets it
            self._wake.set()
        if (
            len(self._records) >= self.batch_size or self._queued_bytes >= self.batch_bytes
        ) and not self._full.is_set():
            self._full.set()
        return True

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
        self._stopping.set()
        self._full.set()
        self._wake.set()
        self._thread.join(timeout)

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
            if self._stopping.is_set():
                break
            if not self._wake.wait(timeout=max(0.01, next_maintenance - time.monotonic())):
                continue
            # Let a batch gather (one commit per batch, not one per exchange) until it is
            # full in records or bytes, or stop() cuts it short.
            self._full.wait(self.batch_delay)
            if not self._stopping.is_set():
                self._full.clear()
            self._wake.clear()  # before taking: a record added from here on sets them again
            self._write_waiting()
        self._drain_and_close()

    def _write_waiting(self) -> None:
        while self._records:
            batch: list[Record] = []
            with contextlib.suppress(IndexError):
                while len(batch) < self.batch_size:
                    batch.append(self._records.popleft())
            self._write(batch)

    def _drain_and_close(self) -> None:
        self._write_waiting()
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
        self._taken_bytes += sum(_size(record) for record in batch)
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
