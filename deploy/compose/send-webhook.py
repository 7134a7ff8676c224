#!/usr/bin/env python3
"""The demo sender: posts webhooks through hookwall (HTTP_PROXY) and checks the outcomes.

Standard library only. urllib reads HTTP_PROXY and turns the proxy URL's user:password into a
Proxy-Authorization header. Exits 0 when the signed delivery got through and the SSRF
attempts were refused, so `docker compose up --exit-code-from sender` is a smoke test.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

# (url, expected status, expected X-Hookwall-Reason)
CASES = [
    ("http://receiver:9000/hook", 200, None),  # signed by hookwall, verified by the receiver
    ("http://169.254.169.254/latest/meta-data/", 403, "address-blocked"),  # cloud metadata
    ("http://receiver:8080/", 403, "port-denied"),  # the exception is for port 9000 only
    ("http://localhost:9090/metrics", 403, "address-blocked"),  # hookwall's own admin port
]


def post(url: str) -> tuple[int, str | None]:
    body = json.dumps({"type": "invoice.paid", "data": {"id": "in_123"}}).encode()
    # Only the fixed http:// URLs of CASES are opened.
    request = urllib.request.Request(  # noqa: S310
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, response.headers.get("X-Hookwall-Reason")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-Hookwall-Reason")


def main() -> int:
    failures = 0
    for url, status, reason in CASES:
        got_status, got_reason = post(url)
        ok = got_status == status and got_reason == reason
        failures += not ok
        print(f"{'ok ' if ok else 'BAD'} POST {url} -> {got_status} {got_reason or ''}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
