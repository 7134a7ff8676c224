"""DeliveryStore: every exchange event also goes to the delivery store (``hookwall logs``).

A thin adapter: ExchangeLog hands over each event it logged (the same dict, computed once)
with its flow; this builds a redacted, capped record from the flow's headers and bodies and
queues it for the writer thread. Nothing here waits on disk: a full queue drops the record
and the count is reported as a ``store_dropped`` warning. A missing, corrupt or locked store
is reported (``store_unavailable``, ``store_error``) and deliveries carry on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from mitmproxy import http

from hookwall.deliveries import logs
from hookwall.deliveries.store import Record, Retention, StoreWriter, build_record, store_path
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import state_of

logger = logging.getLogger(__name__)

DROP_REPORT_DELAY = 1.0  # seconds: drops in a burst are reported as one event


class DeliveryStore:
    def __init__(
        self, runtime: Runtime, data_dir: Path, *, writer: StoreWriter | None = None
    ) -> None:
        self.runtime = runtime
        self.writer = writer or StoreWriter(store_path(data_dir), self._retention, self._report)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: collections.deque[tuple[str, dict[str, object]]] = collections.deque()
        self._drop_report: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def running(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer.start()

    def done(self) -> None:
        if self._drop_report is not None:
            self._drop_report.cancel()
        self.writer.stop()
        self._report_drops()
        self._flush_reports()

    # -- the ExchangeLog sink ------------------------------------------------------------------
    def record(self, flow: http.HTTPFlow | None, event: dict[str, Any]) -> None:
        try:
            record = self._build(flow, event)
        except Exception:  # the store must never break the exchange or its log line
            logger.exception("could not build a delivery store record")
            return
        if not self.writer.submit(record) and self._drop_report is None and self._loop:
            self._drop_report = self._loop.call_later(DROP_REPORT_DELAY, self._report_drops)

    def _build(self, flow: http.HTTPFlow | None, event: dict[str, Any]) -> Record:
        now = time.time()
        if flow is None:
            return build_record(
                now,
                event,
                request_headers=None,
                request_body=None,
                response_headers=None,
                response_body=None,
                capture_body=0,
            )
        state = state_of(flow)
        settings = state.decision.settings if state and state.decision else None
        policy = (state.policy if state else None) or self.runtime.policy
        capture = (settings or policy.defaults).logging.capture_body
        owned = settings.signing.scheme.owned_headers if settings and settings.signing else ()
        request, response = flow.request, flow.response
        return build_record(
            now,
            event,
            request_headers=list(request.headers.items(multi=True)),
            request_body=request.raw_content,
            response_headers=list(response.headers.items(multi=True)) if response else None,
            response_body=response.raw_content if response else None,
            capture_body=capture,
            owned_headers=owned,
            rules=policy.logging.redact,
        )

    # -- settings and reports ------------------------------------------------------------------
    def _retention(self) -> Retention:
        """Read on the writer thread at each sweep: a reloaded policy applies at once."""
        settings = self.runtime.policy.logging
        return Retention(max_age=settings.retention, max_size=settings.max_size)

    def _report(self, event: str, fields: dict[str, object]) -> None:
        """Called on the writer thread: log on the event loop, where every other line is."""
        self._pending.append((event, fields))
        loop = self._loop
        if loop is not None:
            # RuntimeError: the loop is closed; done() flushes what is left.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._flush_reports)

    def _flush_reports(self) -> None:
        while self._pending:
            event, fields = self._pending.popleft()
            level = "info" if event == "store_available" else "warning"
            getattr(logs.get_logger(), level)(event, **fields)

    def _report_drops(self) -> None:
        self._drop_report = None
        dropped = self.writer.take_dropped()
        if dropped:
            logs.get_logger().warning(
                "store_dropped",
                dropped=dropped,
                dropped_total=self.writer.dropped_total,
                queue_size=self.writer.queue_size,
                hint="the delivery store cannot keep up (slow disk or a locked file); these "
                "exchanges are only in the JSON log lines",
            )
