"""One exchange per line, as ``hookwall logs`` prints it: a row of the table (also the attempts
in ``logs show``), or with ``--json`` the JSON log line the proxy wrote for it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hookwall.cli.terminal import BOLD, DIM, RESET, fit, safe, status_colour

_COLUMNS: tuple[tuple[str, int], ...] = (
    ("TIME (UTC)", 19),
    ("REQUEST ID", 28),  # req_ + 24 (hookwall.core.ids): never cut, it is what you copy
    ("SENDER", 10),
    ("METHOD", 6),
    ("HOST", 24),
    ("PATH", 20),
    ("STATUS", 6),
    ("REASON", 18),
    ("WEBHOOK ID", 31),
    ("MS", 8),
)


def iso(ts: float) -> str:
    """The log lines' timestamp format."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def as_log_line(ts: float, event: dict[str, Any]) -> dict[str, Any]:
    """An exchange as the JSON log line has it (``--json`` output is the same shape)."""
    return {"ts": iso(ts), "event": "exchange", **event}


def table_header(colour: bool) -> str:
    cells = [name.ljust(width) if name != "MS" else name.rjust(width) for name, width in _COLUMNS]
    line = " ".join(cells).rstrip()
    return f"{BOLD}{line}{RESET}" if colour else line


def table_row(ts: float, event: dict[str, Any], colour: bool) -> str:
    event = safe(event)
    url = str(event.get("url") or "")
    _, sep, rest = url.partition("://")
    path = "/" + rest.partition("/")[2] if sep else ""
    duration = event.get("duration_ms")
    values = [
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        str(event.get("request_id") or "-"),
        str(event.get("sender") or "-"),
        str(event.get("method") or "-"),
        str(event.get("host") or "-"),
        path or "-",
        str(event.get("status") or "-"),
        str(event.get("reason") or ("-" if event.get("decision") != "deny" else "denied")),
        str(event.get("webhook_id") or "-"),
        f"{duration:.1f}" if isinstance(duration, int | float) else "-",
    ]
    cells = []
    for (name, width), value in zip(_COLUMNS, values, strict=True):
        cell = fit(value, width)
        cell = cell.rjust(width) if name == "MS" else cell.ljust(width)
        if colour and name in ("STATUS", "REASON") and value != "-":
            cell = f"{status_colour(event.get('status'), event.get('decision'))}{cell}{RESET}"
        elif colour and name == "TIME (UTC)":
            cell = f"{DIM}{cell}{RESET}"
        cells.append(cell)
    return " ".join(cells).rstrip()
