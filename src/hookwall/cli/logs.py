"""``hookwall logs``: what happened to deliveries, from the delivery store (or a JSON log
file), filtered, newest last; its action ``logs show ID`` (``cli/show.py``) shows one in full.

A customer says "we never got the invoice.paid webhook yesterday"::

    hookwall logs --host hooks.acme.com --since 1d --status 5xx
    hookwall logs show req_01a22525557a12f43ac71432
    hookwall replay req_01a22525557a12f43ac71432
    hookwall send-test https://hooks.acme.com/x
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hookwall.cli import show
from hookwall.cli.command import Subcommands, UsageError, add_command
from hookwall.cli.logfile import file_entries
from hookwall.cli.storeargs import add_output_args, open_store
from hookwall.cli.table import Table, as_log_line
from hookwall.cli.terminal import terminal_width, use_colour, write_line
from hookwall.deliveries.store import Filters, StoreError, parse_status, parse_time

LOGS_DESCRIPTION = """\
List exchanges from the delivery store, newest last, filtered.
`hookwall logs show ID` shows one exchange in full.

On a terminal the table fits its width (COLUMNS first): narrower than 179 columns
it leaves out the webhook id, sender, method and path, then the year, and shows
the reason after the status; a long value is cut with an ellipsis, never the
request id. Piped, it is always the full table: no colour (unless --color
always), no value cut, one word per field ('-' when empty, a space inside a
value as \\x20), so awk '{print $3}' is the request id.
"""

LOGS_EPILOG = """\
examples:
  hookwall logs --host hooks.acme.com --since 1d --status 5xx
  hookwall logs --host '*.acme.com' --status denied --since 2h
  hookwall logs --webhook-id msg_2KWPBgLlAfxdpx2AI54pPJ85f4W
  hookwall logs --follow --status 4xx,5xx,denied
  hookwall logs --json --since 2026-11-28T00:00:00Z --until 2026-11-29T00:00:00Z | jq .
  hookwall logs --file /var/log/hookwall.jsonl --reason circuit-open
  hookwall logs show req_01a22525557a12f43ac71432
"""


def register(commands: Subcommands) -> None:
    logs = add_command(
        commands,
        "logs",
        cmd_logs,
        help="query the delivery store (what happened to a webhook)",
        description=LOGS_DESCRIPTION,
        epilog=LOGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_filter_args(logs)
    add_output_args(logs, suppress=False)
    logs.add_argument(
        "--limit", type=int, default=50, help="newest N matching exchanges (default 50; 0: all)"
    )
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new exchanges")
    logs.add_argument(
        "--file",
        metavar="PATH",
        type=Path,
        help="read a JSON log file (hookwall run --log-file, or saved stdout) instead of the store",
    )
    logs.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    show.register(logs.add_subparsers(dest="logs_command", metavar="show"))


def _add_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", metavar="GLOB", help="destination host, e.g. '*.acme.com'")
    p.add_argument("--sender", metavar="NAME", help="the authenticated sender")
    p.add_argument(
        "--status",
        metavar="STATUS",
        help="200, 4xx, 5xx, denied, allowed; several with commas (5xx,denied)",
    )
    p.add_argument("--reason", metavar="CODE", help="a refusal reason, e.g. circuit-open")
    p.add_argument("--webhook-id", metavar="ID", help="every attempt of one webhook event")
    p.add_argument("--since", metavar="WHEN", help="age (30m, 2h, 1d) or ISO time")
    p.add_argument("--until", metavar="WHEN", help="age (30m, 2h, 1d) or ISO time")
    p.add_argument("--path", metavar="GLOB", help="URL path, e.g. '/stripe/*'")


def cmd_logs(args: argparse.Namespace) -> int:
    """The list, or the ``show`` action; either way the errors are reported as ``logs``'."""
    try:
        if args.logs_command == "show":
            return show.cmd_show(args)
        return _list(args)
    except UsageError as exc:
        print(f"hookwall logs: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"hookwall logs: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `hookwall logs | head`: stop quietly, flush nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 0 if args.follow else 130


def _list(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    filters = _filters(args, time.time())
    colour = use_colour(args, sys.stdout)
    if args.file:
        entries = file_entries(
            args.file, filters, limit=args.limit, follow=args.follow, interval=args.interval
        )
    else:
        entries = _store_entries(args, filters)
    printed = 0
    table = Table(terminal_width(sys.stdout), colour)
    if not args.json:
        write_line(table.header())
    for ts, event in entries:
        write_line(json.dumps(as_log_line(ts, event)) if args.json else table.row(ts, event))
        printed += 1
    if not printed and not args.follow and not args.json:
        print("(no matching exchanges)", file=sys.stderr)
    elif printed == args.limit and not args.follow and not args.json:
        print(f"(the newest {printed}; --limit N for more, 0 for all)", file=sys.stderr)
    return 0


def _filters(args: argparse.Namespace, now: float) -> Filters:
    try:
        return Filters(
            host=args.host,
            sender=args.sender,
            status=parse_status(args.status) if args.status else (),
            reason=args.reason,
            webhook_id=args.webhook_id,
            since=parse_time(args.since, now) if args.since else None,
            until=parse_time(args.until, now) if args.until else None,
            path=args.path,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _store_entries(
    args: argparse.Namespace, filters: Filters
) -> Iterator[tuple[float, dict[str, Any]]]:
    store = open_store(args)
    try:
        last = store.last_id()
        rows = store.query(filters, limit=args.limit or None)
        for row in rows:
            yield row.ts, row.event
        if not args.follow:
            return
        last = max([last, *(row.id for row in rows)])
        while True:
            time.sleep(args.interval)  # --follow polls the store by row id
            for row in store.query(filters, limit=1000, after_id=last):
                last = row.id
                yield row.ts, row.event
    finally:
        store.conn.close()
