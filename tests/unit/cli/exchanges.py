"""A delivery store with fixed exchanges for the ``hookwall logs`` output tests: fixed times
and ids (so outputs can be compared byte for byte), and values a hostile sender or receiver
could choose (escape sequences, newlines, rich markup, a very long host)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookwall.deliveries.event import EVENT_FIELDS
from hookwall.deliveries.store import Store, build_record, store_path

T0 = 1_795_000_000.0  # 2026-11-18T...Z

IDS = (
    "req_01a1c83d2f607d01c4a9e2b3",
    "req_01a1c841fe44b2e94f0c17d8",
    "req_01a1c84ca9a0f2b1d7e3c955",
    "req_01a1c85000000000000000aa",
    "req_01a1c86000000000000000bb",
)

HOSTILE = {
    "escape": "\x1b[2J\x1b]0;owned\x07",
    "markup": "[bold red]x[/bold red]",
    "newline": "a\nb\r\n",
    "c1": "bad\x9b31m",
}


def event(request_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(EVENT_FIELDS)
    base |= {
        "request_id": request_id,
        "sender": "billing",
        "client": "127.0.0.1:50000",
        "method": "POST",
        "url": "https://hooks.acme.com/webhooks/stripe",
        "host": "hooks.acme.com",
        "port": 443,
        "rule": "acme",
        "resolved_ips": ["203.0.113.7"],
        "peer_ip": "203.0.113.7",
        "decision": "allow",
        "status": 200,
        "signed": "standard-webhooks",
        "key_ids": ["hmac:3f9a0c1d2e4b"],
        "webhook_id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "attempt": 1,
        "queue_ms": 0.1,
        "connect_ms": 3.0,
        "ttfb_ms": 20.0,
        "duration_ms": 25.0,
        "request_bytes": 40,
        "response_bytes": 12,
    }
    return base | fields


EVENTS: tuple[dict[str, Any], ...] = (
    event(IDS[0], status=504, decision="deny", reason="response-timeout", duration_ms=30031.2),
    event(IDS[1], status=500, duration_ms=91.5),
    event(IDS[2], status=503, decision="deny", reason="circuit-open", duration_ms=0.4),
    event(
        IDS[3],
        url="http://hooks.acme.com/\x1b[2Jx" + HOSTILE["markup"],
        sender=HOSTILE["markup"],
        webhook_id=HOSTILE["escape"] + HOSTILE["newline"],
        error="bad\x9b31m",
        reason=HOSTILE["markup"],
        decision="deny",
        status=403,
    ),
    event(
        IDS[4],
        host="a-very-long-receiver-host-name.hooks.customer-of-acme.example",
        url="https://a-very-long-receiver-host-name.hooks.customer-of-acme.example/"
        "webhooks/with/a/long/path/that/goes/on",
        method="PATCH",
        webhook_id=None,
        sender=None,
        duration_ms=123456.7,
    ),
)


def fill(data_dir: Path) -> None:
    """The five exchanges, a minute apart, all of one webhook but the last."""
    store = Store.open(store_path(data_dir))
    store.insert(
        [
            build_record(
                T0 + 60 * i,
                e,
                request_headers=[
                    ("Host", "hooks.acme.com"),
                    ("X-Note", HOSTILE["markup"] + HOSTILE["escape"]),
                ],
                request_body=b'{"type": "invoice.paid"}',
                response_headers=[("Content-Type", "application/json")],
                response_body=b'{"ok": true}',
                capture_body=65536,
            )
            for i, e in enumerate(EVENTS)
        ]
    )
    store.close()
