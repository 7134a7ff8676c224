"""``hookwall send-test URL``: a realistic sample webhook through the running proxy, and what
became of it (delivered or refused and why, the request id, whether it was signed)."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hookwall import __version__
from hookwall.cli.command import Subcommands, UsageError, add_command
from hookwall.cli.datadir import data_dir
from hookwall.cli.proxyclient import ProxyClientError, send
from hookwall.cli.sending import (
    REQUEST_ID_HEADER,
    add_client_args,
    ca_file,
    extra_headers,
    proxy_of,
    verdict_document,
    verdict_text,
    without,
)
from hookwall.cli.storeargs import add_output_args, open_store
from hookwall.cli.terminal import clean, write_line
from hookwall.deliveries.store import Row, StoreError


def register(commands: Subcommands) -> None:
    test = add_command(
        commands,
        "send-test",
        cmd_send_test,
        help="send a sample webhook through the proxy and show the verdict",
        description="POST a realistic sample webhook ({type, id, timestamp, data}) to URL "
        "through the running proxy and print what happened: delivered or refused (and why), "
        "the request id, whether it was signed.",
        epilog="example:\n  hookwall send-test https://hooks.acme.com/x --event invoice.paid",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("url", metavar="URL")
    test.add_argument(
        "--event", default="hookwall.test", help="the event type (default %(default)s)"
    )
    test.add_argument("--body", metavar="FILE", type=Path, help="send this file's bytes instead")
    add_client_args(test)
    add_output_args(test, suppress=False)


def sample_webhook(event_type: str, now: float | None = None) -> bytes:
    """A realistic webhook body: {type, id, timestamp, data}."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    document = {
        "type": event_type,
        "id": "evt_" + secrets.token_hex(12),
        "timestamp": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data": {
            "object": "test",
            "message": "a sample webhook sent by `hookwall send-test` to check the pipeline",
            "sent_with": f"hookwall {__version__}",
        },
    }
    return json.dumps(document, indent=None).encode()


def cmd_send_test(args: argparse.Namespace) -> int:
    try:
        proxy = proxy_of(args)
        extra = extra_headers(args.header)
        body = args.body.read_bytes() if args.body else sample_webhook(args.event)
    except UsageError as exc:
        print(f"hookwall send-test: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hookwall send-test: cannot read {args.body}: {exc.strerror}", file=sys.stderr)
        return 2
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", f"hookwall-send-test/{__version__}"),
    ]
    headers = [*without(headers, {n.lower() for n, _ in extra}), *extra]
    try:
        reply = send(
            proxy, "POST", args.url, headers, body, ca_file=ca_file(args), timeout=args.timeout
        )
    except ValueError as exc:
        print(f"hookwall send-test: {exc}", file=sys.stderr)
        return 2
    except ProxyClientError as exc:
        print(
            f"hookwall send-test: could not reach the proxy at {proxy.url}: {exc} "
            "(is `hookwall run` up? pass --proxy)",
            file=sys.stderr,
        )
        return 1
    request_id = reply.header(REQUEST_ID_HEADER)
    row, store_note = _stored(args, request_id)
    doc = verdict_document(reply, args.url)
    event = row.event if row else {}
    doc |= {
        "webhook_id": event.get("webhook_id"),
        "signed": event.get("signed") if row else None,
        "key_ids": event.get("key_ids") if row else None,
        "rule": event.get("rule") if row else None,
    }
    if args.json:
        write_line(json.dumps(doc))
    else:
        write_line(clean(f"POST {args.url} via {proxy.url}"))
        write_line(verdict_text(reply, request_id))
        if row is not None:
            signed = event.get("signed")
            keys = ", ".join(event.get("key_ids") or [])
            write_line(clean(f"  webhook id   {event.get('webhook_id') or '-'}"))
            write_line(clean(f"  rule         {event.get('rule') or '(defaults)'}"))
            write_line(
                clean(
                    f"  signed       {signed if signed else 'no'}" + (f" ({keys})" if keys else "")
                )
            )
        else:
            write_line(clean(f"  signed       unknown ({store_note})"))
        if request_id:
            write_line(clean(f"  details      hookwall logs show {request_id}"))
    return 0 if doc["delivered"] else 1


def _stored(args: argparse.Namespace, request_id: str | None) -> tuple[Row | None, str]:
    """The exchange as the proxy stored it (signing details), waiting briefly for the writer."""
    if not request_id:
        return None, "the proxy sent no request id"
    try:
        store = open_store(args)
    except StoreError:
        return None, f"no delivery store in {data_dir(args)}; pass the proxy's --data-dir"
    try:
        return _poll(lambda: store.get(request_id), args.wait), (
            f"{request_id} is not in {store.path} (yet); is that the proxy's --data-dir?"
        )
    finally:
        store.conn.close()


def _poll(fetch: Callable[[], Row | None], timeout: float) -> Row | None:
    """The store is written on a background thread within milliseconds; wait that long."""
    deadline = time.monotonic() + timeout
    while True:
        row = fetch()
        if row is not None or time.monotonic() >= deadline:
            return row
        time.sleep(0.02)
