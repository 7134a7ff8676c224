"""Debugging deliveries: ``hookwall logs``, ``hookwall logs show``, ``hookwall replay``,
``hookwall send-test``.

A customer says "we never got the invoice.paid webhook yesterday"::

    hookwall logs --host hooks.acme.com --since 1d --status 5xx
    hookwall logs show req_01a22525557a12f43ac71432
    hookwall replay req_01a22525557a12f43ac71432
    hookwall send-test https://hooks.acme.com/x
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import secrets
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from hookwall import __version__
from hookwall.cli.proxyclient import (
    DEFAULT_PROXY,
    Proxy,
    ProxyClientError,
    Reply,
    parse_proxy,
    send,
    sendable_headers,
)
from hookwall.deliveries.redaction import redact_event
from hookwall.deliveries.store import (
    REDACTED,
    Filters,
    Row,
    Store,
    StoreError,
    matches,
    parse_status,
    parse_time,
    store_path,
)

REPLAY_HEADER = "X-Hookwall-Replay-Of"
REQUEST_ID_HEADER = "X-Hookwall-Request-Id"
REASON_HEADER = "X-Hookwall-Reason"
TOKEN_ENV = "HOOKWALL_PROXY_TOKEN"  # noqa: S105 (the name of a variable, not a secret)
# Sent afresh by the proxy when it signs; a stale copy is never replayed.
_NOT_REPLAYED = frozenset({"webhook-timestamp", "svix-timestamp"})

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


# -- parsers ------------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    """Register logs / replay / send-test on the ``hookwall`` sub-command parser."""
    logs = sub.add_parser(
        "logs",
        help="query the delivery store (what happened to a webhook)",
        description="List exchanges from the delivery store, newest last, filtered. "
        "`hookwall logs show ID` shows one exchange in full.",
        epilog=LOGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_filter_args(logs)
    _add_common_args(logs, suppress=False)
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
    logs_sub = logs.add_subparsers(dest="logs_command", metavar="show")
    show = logs_sub.add_parser(
        "show",
        help="one exchange in full",
        description="Everything about one exchange: the request and the answer (headers, "
        "captured bodies), the rule and the decision with its explanation, the timings, and "
        "every other attempt of the same webhook.",
    )
    show.add_argument("id", metavar="ID", help="the request id (req_...) or the row number")
    _add_common_args(show, suppress=True)

    replay = sub.add_parser(
        "replay",
        help="send a captured delivery again, through the proxy",
        description="Re-send a captured request through the running proxy, so it is judged and "
        "signed under the current policy (fresh timestamp, same webhook id) and logged as a "
        "new attempt linked to the original (replay_of). Needs the whole body in the store "
        "(logging.capture_body).",
    )
    replay.add_argument("id", metavar="ID", help="the request id (req_...) to replay")
    replay.add_argument("--to", metavar="URL", help="send to this URL instead of the original")
    _add_client_args(replay)
    _add_common_args(replay, suppress=False)

    test = sub.add_parser(
        "send-test",
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
    _add_client_args(test)
    _add_common_args(test, suppress=False)


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


def _add_common_args(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default,
        help="hookwall's data dir, where the store is (default $HOOKWALL_DATA_DIR or "
        "~/.local/share/hookwall)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="JSON output",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=argparse.SUPPRESS if suppress else "auto",
        help="colour (default: auto, on a terminal without NO_COLOR)",
    )


def _add_client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--proxy",
        metavar="URL",
        default=os.environ.get("HOOKWALL_PROXY", DEFAULT_PROXY),
        help="the running proxy (default $HOOKWALL_PROXY or %(default)s); "
        "http://NAME:TOKEN@HOST:PORT to authenticate as a sender",
    )
    p.add_argument(
        "--sender",
        metavar="NAME",
        help=f"authenticate to the proxy as this sender (token from ${TOKEN_ENV})",
    )
    p.add_argument(
        "--header",
        "-H",
        metavar="'NAME: VALUE'",
        action="append",
        default=[],
        help="add a header (repeatable), e.g. a receiver's Authorization the store redacted",
    )
    p.add_argument(
        "--cacert",
        metavar="PEM",
        type=Path,
        help="the CA to trust for https:// URLs (default: hookwall's CA in the data dir)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default %(default)s)")
    p.add_argument("--wait", type=float, default=3.0, help=argparse.SUPPRESS)


# -- shared helpers -----------------------------------------------------------------------------
class UsageError(Exception):
    """A bad argument: exit 2 with the message."""


def _data_dir(args: argparse.Namespace) -> Path:
    from hookwall.cli.main import default_data_dir

    given = getattr(args, "data_dir", None)
    return Path(given) if given else default_data_dir()


def _open_store(args: argparse.Namespace) -> Store:
    return Store.open_readonly(store_path(_data_dir(args)))


def _colour(args: argparse.Namespace, stream: IO[str]) -> bool:
    choice = getattr(args, "color", "auto")
    if choice != "auto":
        return bool(choice == "always")
    return stream.isatty() and not os.environ.get("NO_COLOR")


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


def iso(ts: float) -> str:
    """The log lines' timestamp format."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def as_log_line(ts: float, event: dict[str, Any]) -> dict[str, Any]:
    """An exchange as the JSON log line has it (``--json`` output is the same shape)."""
    return {"ts": iso(ts), "event": "exchange", **event}


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# -- table --------------------------------------------------------------------------------------
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
_RESET, _BOLD, _DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
_GREEN, _CYAN, _YELLOW, _RED = "\x1b[32m", "\x1b[36m", "\x1b[33m", "\x1b[31m"


def _clean(text: str) -> str:
    """Text from senders and receivers, safe for a terminal: control characters (C0, C1,
    ESC: a header could otherwise repaint the operator's screen) are shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _status_colour(status: object, decision: object) -> str:
    if decision == "deny":
        return _RED
    if not isinstance(status, int):
        return ""
    return {2: _GREEN, 3: _CYAN, 4: _YELLOW, 5: _RED}.get(status // 100, "")


def table_header(colour: bool) -> str:
    cells = [name.ljust(width) if name != "MS" else name.rjust(width) for name, width in _COLUMNS]
    line = " ".join(cells).rstrip()
    return f"{_BOLD}{line}{_RESET}" if colour else line


def table_row(ts: float, event: dict[str, Any], colour: bool) -> str:
    event = _safe(event)
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
        cell = _fit(value, width)
        cell = cell.rjust(width) if name == "MS" else cell.ljust(width)
        if colour and name in ("STATUS", "REASON") and value != "-":
            cell = f"{_status_colour(event.get('status'), event.get('decision'))}{cell}{_RESET}"
        elif colour and name == "TIME (UTC)":
            cell = f"{_DIM}{cell}{_RESET}"
        cells.append(cell)
    return " ".join(cells).rstrip()


# -- hookwall logs ------------------------------------------------------------------------------
def cmd_logs(args: argparse.Namespace) -> int:
    try:
        if args.logs_command == "show":
            return cmd_show(args)
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
    colour = _colour(args, sys.stdout)
    entries = _file_entries(args, filters) if args.file else _store_entries(args, filters)
    printed = 0
    if not args.json:
        _write(table_header(colour))
    for ts, event in entries:
        _write(json.dumps(as_log_line(ts, event)) if args.json else table_row(ts, event, colour))
        printed += 1
    if not printed and not args.follow and not args.json:
        print("(no matching exchanges)", file=sys.stderr)
    elif printed == args.limit and not args.follow and not args.json:
        print(f"(the newest {printed}; --limit N for more, 0 for all)", file=sys.stderr)
    return 0


def _store_entries(
    args: argparse.Namespace, filters: Filters
) -> Iterator[tuple[float, dict[str, Any]]]:
    store = _open_store(args)
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


def _file_entries(
    args: argparse.Namespace, filters: Filters
) -> Iterator[tuple[float, dict[str, Any]]]:
    path: Path = args.file
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        found = [e for e in _parse_lines(handle) if matches(e[1], e[0], filters)]
        yield from found[-args.limit :] if args.limit else found
        if not args.follow:
            return
        pending = ""
        while True:
            chunk = handle.read()
            if not chunk:
                time.sleep(args.interval)
                continue
            pending += chunk
            *complete, pending = pending.split("\n")
            for entry in _parse_lines(complete):
                if matches(entry[1], entry[0], filters):
                    yield entry


def _parse_lines(lines: Iterable[str]) -> Iterator[tuple[float, dict[str, Any]]]:
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


# -- hookwall logs show -------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        row = store.get(args.id)
        if row is None:
            print(f"hookwall logs show: no exchange {args.id!r} in {store.path}", file=sys.stderr)
            return 1
        related = store.related(row)
    finally:
        store.conn.close()
    if getattr(args, "json", False):
        _write(json.dumps(show_document(row, related), indent=2))
    else:
        _write(show_text(row, related, _colour(args, sys.stdout)))
    return 0


def show_document(row: Row, related: list[Row]) -> dict[str, Any]:
    return {
        **as_log_line(row.ts, row.event),
        "request": {
            "headers": row.request_headers,
            "body": _body_document(row.request_body, row.request_truncated, row.request_headers),
        },
        "response": {
            "headers": row.response_headers,
            "body": _body_document(row.response_body, row.response_truncated, row.response_headers),
        },
        "attempts": [as_log_line(r.ts, r.event) for r in related],
    }


def _body_document(
    body: bytes | None, truncated: bool, headers: list[tuple[str, str]] | None
) -> dict[str, Any] | None:
    if body is None:
        return None
    text = _readable(body, truncated, headers)
    doc: dict[str, Any] = {"captured_bytes": len(body), "truncated": truncated}
    if text is not None:
        doc["text"] = text
    else:
        doc["base64"] = base64.b64encode(body).decode()
    return doc


def _header(headers: list[tuple[str, str]] | None, name: str) -> str | None:
    return next((v for k, v in headers or [] if k.lower() == name), None)


def _readable(body: bytes, truncated: bool, headers: list[tuple[str, str]] | None) -> str | None:
    """The body as text (decompressed when whole, JSON pretty-printed), or None if binary."""
    encoding = (_header(headers, "content-encoding") or "").strip().lower()
    if encoding and not truncated:
        try:
            if encoding in ("gzip", "x-gzip"):
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
        except (OSError, zlib.error, EOFError):
            return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    if not truncated:
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return text


def show_text(row: Row, related: list[Row], colour: bool) -> str:
    e = _safe(row.event)

    def heading(text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if colour else text

    def ms(name: str) -> str:
        value = e.get(name)
        return f"{value:.1f} ms" if isinstance(value, int | float) else "-"

    status = e.get("status")
    if e.get("decision") == "deny":
        verdict = f"DENIED {e.get('reason')} ({status})"
    else:
        verdict = f"allowed; the receiver answered {status}" if status else "allowed"
    if colour:
        verdict = f"{_status_colour(status, e.get('decision'))}{verdict}{_RESET}"
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
        lines += ["", heading(f"{title} ({len(related)})"), table_header(colour)]
        for other in related:
            marker = "  ← this one" if other.id == row.id else ""
            if other.event.get("replay_of"):
                marker += f"  (replay of {other.event['replay_of']})"
            lines.append(table_row(other.ts, other.event, colour) + marker)
    return "\n".join(lines)


def _headers_text(headers: list[tuple[str, str]] | None) -> list[str]:
    if headers is None:
        return ["  (no headers: none were seen)"]
    shown = [f"  {_clean(name)}: {_clean(value)}" for name, value in headers]
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
    text = _readable(body, truncated, headers)
    if text is None:
        shown = base64.b64encode(body[:3072]).decode()
        out = [f"  ({len(body)} bytes of binary data; base64:)", f"  {shown}"]
    else:
        out = ["", *(f"  {_clean(line)}" for line in text.splitlines())]
    if truncated:
        out.append(f"  -- only the first {len(body)} of {size} bytes were captured --")
    return out


# -- hookwall replay ----------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    try:
        proxy = _proxy(args)
        extra = _extra_headers(args.header)
        store = _open_store(args)
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
    headers = [*_without(headers, {n.lower() for n, _ in extra}), *extra]
    headers.append((REPLAY_HEADER, row.request_id or ""))
    url = args.to or str(row.event.get("url"))
    method = str(row.event.get("method") or "POST")
    try:
        reply = send(
            proxy,
            method,
            url,
            headers,
            row.request_body,
            ca_file=_ca_file(args),
            timeout=args.timeout,
        )
    except (ProxyClientError, ValueError) as exc:
        print(f"hookwall replay: could not send through {proxy.url}: {exc}", file=sys.stderr)
        return 1
    new_id = reply.header(REQUEST_ID_HEADER)
    if args.json:
        _write(json.dumps(_verdict_document(reply, url) | {"replay_of": row.request_id}))
    else:
        _write(
            _clean(f"replayed {row.request_id} as {new_id or '(no request id)'}: {method} {url}")
        )
        _write(_verdict_text(reply, new_id))
        if withheld:
            _write(
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


def _without(headers: list[tuple[str, str]], names: set[str]) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers if n.lower() not in names]


def _extra_headers(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for text in values:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header expects 'Name: value', got {text!r}")
        out.append((name.strip(), value.strip()))
    return out


def _proxy(args: argparse.Namespace) -> Proxy:
    token = os.environ.get(TOKEN_ENV) if args.sender else None
    try:
        return parse_proxy(args.proxy, user=args.sender, token=token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _ca_file(args: argparse.Namespace) -> Path | None:
    if args.cacert:
        return Path(args.cacert)
    from hookwall.app.ca import ca_cert_path

    path = ca_cert_path(_data_dir(args))
    return path if path.exists() else None


def _verdict_document(reply: Reply, url: str) -> dict[str, Any]:
    reason = reply.header(REASON_HEADER)
    message = None
    if reason:
        try:
            message = json.loads(reply.body).get("message")
        except (ValueError, AttributeError):
            message = None
    return {
        "url": url,
        "status": reply.status,
        "delivered": reason is None and 200 <= reply.status < 300,
        "refused_by_hookwall": reason is not None,
        "reason": reason,
        "message": message,
        "request_id": reply.header(REQUEST_ID_HEADER),
        "refused_on_connect": reply.on_connect,
    }


def _verdict_text(reply: Reply, request_id: str | None) -> str:
    doc = _verdict_document(reply, "")
    if doc["refused_by_hookwall"]:
        lines = [f"refused by hookwall: {reply.status} {doc['reason']}"]
        if doc["message"]:
            lines.append(f"  message      {doc['message']}")
        if doc["reason"] == "auth-required":
            lines.append(
                f"  hint         authenticate as a sender: --sender NAME with the token in "
                f"${TOKEN_ENV}, or --proxy http://NAME:TOKEN@HOST:PORT"
            )
    else:
        state = "delivered" if doc["delivered"] else "not accepted"
        lines = [f"{state}: the receiver answered {reply.status} {reply.phrase}".rstrip()]
        preview = " ".join(reply.body[:500].decode("utf-8", "replace").split())
        if preview:
            lines.append(f"  receiver     {_fit(preview, 100)}")
    lines.append(f"  request id   {request_id or '-'}")
    return "\n".join(_clean(line) for line in lines)


# -- hookwall send-test -------------------------------------------------------------------------
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
        proxy = _proxy(args)
        extra = _extra_headers(args.header)
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
    headers = [*_without(headers, {n.lower() for n, _ in extra}), *extra]
    try:
        reply = send(
            proxy, "POST", args.url, headers, body, ca_file=_ca_file(args), timeout=args.timeout
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
    doc = _verdict_document(reply, args.url)
    event = row.event if row else {}
    doc |= {
        "webhook_id": event.get("webhook_id"),
        "signed": event.get("signed") if row else None,
        "key_ids": event.get("key_ids") if row else None,
        "rule": event.get("rule") if row else None,
    }
    if args.json:
        _write(json.dumps(doc))
    else:
        _write(_clean(f"POST {args.url} via {proxy.url}"))
        _write(_verdict_text(reply, request_id))
        if row is not None:
            signed = event.get("signed")
            keys = ", ".join(event.get("key_ids") or [])
            _write(_clean(f"  webhook id   {event.get('webhook_id') or '-'}"))
            _write(_clean(f"  rule         {event.get('rule') or '(defaults)'}"))
            _write(
                _clean(
                    f"  signed       {signed if signed else 'no'}" + (f" ({keys})" if keys else "")
                )
            )
        else:
            _write(_clean(f"  signed       unknown ({store_note})"))
        if request_id:
            _write(_clean(f"  details      hookwall logs show {request_id}"))
    return 0 if doc["delivered"] else 1


def _stored(args: argparse.Namespace, request_id: str | None) -> tuple[Row | None, str]:
    """The exchange as the proxy stored it (signing details), waiting briefly for the writer."""
    if not request_id:
        return None, "the proxy sent no request id"
    try:
        store = _open_store(args)
    except StoreError:
        return None, f"no delivery store in {_data_dir(args)}; pass the proxy's --data-dir"
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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "logs": cmd_logs,
    "replay": cmd_replay,
    "send-test": cmd_send_test,
}
