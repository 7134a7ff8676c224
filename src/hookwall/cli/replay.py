"""``hookwall replay ID``: send a captured delivery again through the running proxy, judged and
signed under the current policy and logged as a new attempt linked to the original."""

from __future__ import annotations

import argparse
import json
import sys

from hookwall.cli.command import Subcommands, UsageError, add_command
from hookwall.cli.proxyclient import ProxyClientError, send, sendable_headers
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
from hookwall.core.headers import REPLAY_OF
from hookwall.deliveries.store import REDACTED, Row, StoreError

# Sent afresh by the proxy when it signs; a stale copy is never replayed.
_NOT_REPLAYED = frozenset({"webhook-timestamp", "svix-timestamp"})


def register(commands: Subcommands) -> None:
    replay = add_command(
        commands,
        "replay",
        cmd_replay,
        help="send a captured delivery again, through the proxy",
        description="Re-send a captured request through the running proxy, so it is judged and "
        "signed under the current policy (fresh timestamp, same webhook id) and logged as a "
        "new attempt linked to the original (replay_of). Needs the whole body in the store "
        "(logging.capture_body).",
    )
    replay.add_argument("id", metavar="ID", help="the request id (req_...) to replay")
    replay.add_argument("--to", metavar="URL", help="send to this URL instead of the original")
    add_client_args(replay)
    add_output_args(replay, suppress=False)


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        proxy = proxy_of(args)
        extra = extra_headers(args.header)
        store = open_store(args)
    except UsageError as exc:
        print(f"hookwall replay: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"hookwall replay: {exc}", file=sys.stderr)
        return 1
    try:
        row = store.get(args.id)
    finally:
        store.conn.close()
    if row is None:
        print(f"hookwall replay: no exchange {args.id!r} in {store.path}", file=sys.stderr)
        return 1
    problem = replay_refusal(row, to=args.to)
    if problem:
        print(f"hookwall replay: cannot replay {args.id}: {problem}", file=sys.stderr)
        return 1
    assert row.request_headers is not None and row.request_body is not None
    headers, withheld = replay_headers(row.request_headers)
    headers = [*without(headers, {n.lower() for n, _ in extra}), *extra]
    headers.append((REPLAY_OF, row.request_id or ""))
    url = args.to or str(row.event.get("url"))
    method = str(row.event.get("method") or "POST")
    try:
        reply = send(
            proxy,
            method,
            url,
            headers,
            row.request_body,
            ca_file=ca_file(args),
            timeout=args.timeout,
        )
    except (ProxyClientError, ValueError) as exc:
        print(f"hookwall replay: could not send through {proxy.url}: {exc}", file=sys.stderr)
        return 1
    new_id = reply.header(REQUEST_ID_HEADER)
    if args.json:
        write_line(json.dumps(verdict_document(reply, url) | {"replay_of": row.request_id}))
    else:
        write_line(
            clean(f"replayed {row.request_id} as {new_id or '(no request id)'}: {method} {url}")
        )
        write_line(verdict_text(reply, new_id))
        if withheld:
            write_line(
                f"  note         not re-sent (redacted in the store): {', '.join(withheld)}; "
                "add them with -H if the receiver needs them"
            )
    return 0 if 200 <= reply.status < 300 else 1


def replay_refusal(row: Row, *, to: str | None = None) -> str | None:
    """Why this exchange cannot be replayed faithfully, or None."""
    event = row.event
    if event.get("method") in (None, "CONNECT"):
        return "it is a CONNECT tunnel, not a delivery (the request inside was not seen)"
    url = str(event.get("url") or "")
    if to is None and REDACTED in url:
        return (
            f"its URL carried credentials the store does not keep ({url}); pass the full URL "
            "with --to"
        )
    if row.request_headers is None:
        return "its request headers were not captured"
    if row.request_body is None:
        return (
            f"its request body ({event.get('request_bytes')} bytes) was not captured "
            "(logging.capture_body is 0 for this destination, or hookwall refused the request "
            "before reading it); nothing faithful to re-send"
        )
    if row.request_truncated:
        return (
            f"only the first {len(row.request_body)} of {event.get('request_bytes')} body bytes "
            "were captured (logging.capture_body); raise the cap to replay deliveries this large"
        )
    return None


def replay_headers(headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """The stored headers to send again, and the names withheld because they were redacted
    (signatures come back fresh from the proxy; credentials are the operator's to add)."""
    kept, withheld = [], []
    for name, value in sendable_headers(headers):
        if name.lower() in _NOT_REPLAYED:
            continue
        if value == REDACTED:
            if "signature" not in name.lower():
                withheld.append(name)
            continue
        kept.append((name, value))
    return kept, withheld
