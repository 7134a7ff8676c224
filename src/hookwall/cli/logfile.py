"""``hookwall logs --file PATH``: the exchanges of a JSON log file (``hookwall run --log-file``,
or saved stdout) instead of the store, and ``--follow`` on it as it grows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from hookwall.deliveries.redaction import redact_event
from hookwall.deliveries.store import Filters, StoreError, matches


def file_entries(
    path: Path, filters: Filters, *, limit: int, follow: bool, interval: float
) -> Iterator[tuple[float, dict[str, Any]]]:
    """The newest ``limit`` (0: all) matching exchanges, then with ``follow`` every new one,
    reading what was appended every ``interval`` seconds."""
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        found = [e for e in parse_lines(handle) if matches(e[1], e[0], filters)]
        yield from found[-limit:] if limit else found
        if not follow:
            return
        pending = ""
        while True:
            chunk = handle.read()
            if not chunk:
                time.sleep(interval)
                continue
            pending += chunk
            *complete, pending = pending.split("\n")
            for entry in parse_lines(complete):
                if matches(entry[1], entry[0], filters):
                    yield entry


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[float, dict[str, Any]]]:
    """Exchange events from JSON log lines; other events and stray lines are skipped."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event") != "exchange":
            continue
        try:
            ts = datetime.fromisoformat(str(event.get("ts")).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        fields = {k: v for k, v in event.items() if k not in ("ts", "level", "event")}
        yield ts, redact_event(fields)  # a file an older hookwall wrote, with fewer rules
