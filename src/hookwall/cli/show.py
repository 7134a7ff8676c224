"""``hookwall logs show ID``: one exchange in full (request and answer, the decision and its
explanation, the timings, every other attempt of the same webhook).

An action of ``hookwall logs``, which parses it and reports its errors (``cli/logs.py``)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

from hookwall.cli.bodies import body_document, readable
from hookwall.cli.command import Subcommands
from hookwall.cli.storeargs import add_output_args, open_store
from hookwall.cli.table import Table, as_log_line, iso
from hookwall.cli.terminal import (
    BOLD,
    RESET,
    clean,
    safe,
    status_colour,
    terminal_width,
    use_colour,
    write_line,
)
from hookwall.deliveries.store import Row


def register(actions: Subcommands) -> None:
    """Add ``show`` to the actions of ``hookwall logs``."""
    show = actions.add_parser(
        "show",
        help="one exchange in full",
        description="Everything about one exchange: the request and the answer (headers, "
        "captured bodies), the rule and the decision with its explanation, the timings, and "
        "every other attempt of the same webhook.",
    )
    show.add_argument("id", metavar="ID", help="the request id (req_...) or the row number")
    add_output_args(show, suppress=True)


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        row = store.get(args.id)
        if row is None:
            print(f"hookwall logs show: no exchange {args.id!r} in {store.path}", file=sys.stderr)
            return 1
        related = store.related(row)
    finally:
        store.conn.close()
    if getattr(args, "json", False):
        write_line(json.dumps(show_document(row, related), indent=2))
    else:
        write_line(
            show_text(row, related, use_colour(args, sys.stdout), terminal_width(sys.stdout))
        )
    return 0


def show_document(row: Row, related: list[Row]) -> dict[str, Any]:
    return {
        **as_log_line(row.ts, row.event),
        "request": {
            "headers": row.request_headers,
            "body": body_document(row.request_body, row.request_truncated, row.request_headers),
        },
        "response": {
            "headers": row.response_headers,
            "body": body_document(row.response_body, row.response_truncated, row.response_headers),
        },
        "attempts": [as_log_line(r.ts, r.event) for r in related],
    }


def show_text(row: Row, related: list[Row], colour: bool, width: int | None = None) -> str:
    """The exchange in full; its attempts as a table that fits ``width`` (None: piped)."""
    e = safe(row.event)

    def heading(text: str) -> str:
        return f"{BOLD}{text}{RESET}" if colour else text

    def ms(name: str) -> str:
        value = e.get(name)
        return f"{value:.1f} ms" if isinstance(value, int | float) else "-"

    status = e.get("status")
    if e.get("decision") == "deny":
        verdict = f"DENIED {e.get('reason')} ({status})"
    else:
        verdict = f"allowed; the receiver answered {status}" if status else "allowed"
    if colour:
        verdict = f"{status_colour(status, e.get('decision'))}{verdict}{RESET}"
    signed = e.get("signed")
    key_ids = e.get("key_ids") or []
    lines = [
        heading(f"exchange {e.get('request_id')}  (row {row.id})"),
        f"  time         {iso(row.ts)}",
        f"  sender       {e.get('sender') or '-'}   client {e.get('client') or '-'}",
        f"  request      {e.get('method')} {e.get('url')}",
        f"  destination  {e.get('host')}:{e.get('port')}   rule: {e.get('rule') or '(defaults)'}",
        f"  addresses    resolved {', '.join(e.get('resolved_ips') or []) or '-'}; "
        f"connected to {e.get('peer_ip') or '-'}",
        f"  decision     {verdict}",
    ]
    if e.get("error"):
        lines.append(f"  explanation  {e['error']}")
    lines += [
        f"  webhook id   {e.get('webhook_id') or '-'}   attempt {e.get('attempt') or 1}"
        + (f"   replay of {e['replay_of']}" if e.get("replay_of") else ""),
        f"  signed       {signed if signed else 'no'}"
        + (f"   keys {', '.join(key_ids)}" if key_ids else ""),
    ]
    for name in ("redirect", "tls", "hop"):
        if e.get(name):
            lines.append(f"  {name:<12} {e[name]}")
    lines += [
        f"  timings      queue {ms('queue_ms')} · dns {ms('dns_ms')} · connect "
        f"{ms('connect_ms')} · first byte {ms('ttfb_ms')} · total {ms('duration_ms')}",
        f"  bytes        request {e.get('request_bytes')} · response {e.get('response_bytes')}",
        "",
        heading("request"),
        *_headers_text(row.request_headers),
        *_body_text(row.request_body, row.request_truncated, row.request_headers, "request", e),
        "",
        heading("response"),
        *_headers_text(row.response_headers),
        *_body_text(row.response_body, row.response_truncated, row.response_headers, "response", e),
    ]
    webhook = e.get("webhook_id")
    if len(related) > 1 or webhook:
        title = f"attempts of webhook {webhook}" if webhook else "linked attempts"
        lines += ["", heading(f"{title} ({len(related)})"), *_attempts(row, related, colour, width)]
    return "\n".join(lines)


def _attempts(row: Row, related: list[Row], colour: bool, width: int | None) -> list[str]:
    """The attempts' table. Piped, each row whole with its notes after it (``← this one``,
    ``(replay of ID)``); on a terminal, the table fits ``width`` after a two-column margin
    that marks this one (``→``), and the replays are said below it."""
    if width is None:
        table = Table(None, colour)
        lines = [table.header()]
        for other in related:
            marker = "  ← this one" if other.id == row.id else ""
            if other.event.get("replay_of"):
                marker += f"  (replay of {clean(str(other.event['replay_of']))})"
            lines.append(table.row(other.ts, other.event) + marker)
        return lines
    table = Table(max(1, width - 2), colour)
    lines = ["  " + table.header()]
    notes = []
    for other in related:
        lines.append(("→ " if other.id == row.id else "  ") + table.row(other.ts, other.event))
        if other.event.get("replay_of"):
            replayed = safe(other.event)
            notes.append(f"  {replayed.get('request_id')} is a replay of {replayed['replay_of']}")
    return lines + notes


def _headers_text(headers: list[tuple[str, str]] | None) -> list[str]:
    if headers is None:
        return ["  (no headers: none were seen)"]
    shown = [f"  {clean(name)}: {clean(value)}" for name, value in headers]
    return shown or ["  (no headers)"]


def _body_text(
    body: bytes | None,
    truncated: bool,
    headers: list[tuple[str, str]] | None,
    which: str,
    event: dict[str, Any],
) -> list[str]:
    size = event.get(f"{which}_bytes")
    if body is None:
        if not size:
            return []
        return [f"  (body of {size} bytes not captured: logging.capture_body is 0 here)"]
    if not body:
        return ["  (empty body)"]
    text = readable(body, truncated, headers)
    if text is None:
        shown = base64.b64encode(body[:3072]).decode()
        out = [f"  ({len(body)} bytes of binary data; base64:)", f"  {shown}"]
    else:
        out = ["", *(f"  {clean(line)}" for line in text.splitlines())]
    if truncated:
        out.append(f"  -- only the first {len(body)} of {size} bytes were captured --")
    return out
