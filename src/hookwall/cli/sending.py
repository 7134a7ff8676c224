"""What ``replay`` and ``send-test`` share to send one request through the running proxy: the
options that reach it (``--proxy``, ``--sender``, ``-H``, ``--cacert``), and how its verdict
on the request is told (delivered, not accepted, or refused by hookwall and why)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from hookwall.cli.command import UsageError
from hookwall.cli.datadir import data_dir
from hookwall.cli.proxyclient import DEFAULT_PROXY, Proxy, Reply, parse_proxy
from hookwall.cli.terminal import clean, fit
from hookwall.core.headers import REASON, REQUEST_ID

REQUEST_ID_HEADER = REQUEST_ID
REASON_HEADER = REASON
TOKEN_ENV = "HOOKWALL_PROXY_TOKEN"  # noqa: S105 (the name of a variable, not a secret)


def add_client_args(p: argparse.ArgumentParser) -> None:
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


def proxy_of(args: argparse.Namespace) -> Proxy:
    """``--proxy``, authenticated as ``--sender`` with the token from ``$HOOKWALL_PROXY_TOKEN``."""
    token = os.environ.get(TOKEN_ENV) if args.sender else None
    try:
        return parse_proxy(args.proxy, user=args.sender, token=token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def extra_headers(values: list[str]) -> list[tuple[str, str]]:
    """The ``-H 'Name: value'`` headers."""
    out = []
    for text in values:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header expects 'Name: value', got {text!r}")
        out.append((name.strip(), value.strip()))
    return out


def without(headers: list[tuple[str, str]], names: set[str]) -> list[tuple[str, str]]:
    """``headers`` minus those named (lower-case) in ``names``: the ones ``-H`` replaces."""
    return [(n, v) for n, v in headers if n.lower() not in names]


def ca_file(args: argparse.Namespace) -> Path | None:
    """``--cacert``, else hookwall's CA in the data dir if there is one."""
    if args.cacert:
        return Path(args.cacert)
    from hookwall.app.ca import ca_cert_path

    path = ca_cert_path(data_dir(args))
    return path if path.exists() else None


def verdict_document(reply: Reply, url: str) -> dict[str, Any]:
    """What became of the request, for ``--json`` (and ``verdict_text``)."""
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


def verdict_text(reply: Reply, request_id: str | None) -> str:
    """What became of the request, for a person: the refusal and why, or the receiver's answer."""
    doc = verdict_document(reply, "")
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
            lines.append(f"  receiver     {fit(preview, 100)}")
    lines.append(f"  request id   {request_id or '-'}")
    return "\n".join(clean(line) for line in lines)
