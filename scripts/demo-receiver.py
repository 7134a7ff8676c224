#!/usr/bin/env python3
"""A tiny webhook receiver for the README walkthrough: prints each webhook and checks its
Standard Webhooks signature (stdlib only, the algorithm of docs/verifying.md).

    DEMO_WHSEC=whsec_... python3 scripts/demo-receiver.py --listen 127.0.0.2:9001
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.server
import os
import time


def verify(secret: str, headers: dict[str, str], body: bytes) -> str:
    try:
        msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
        sent = headers["webhook-signature"].split()
    except KeyError:
        return "UNSIGNED"
    if abs(time.time() - int(ts)) > 300:
        return "INVALID (timestamp too old or in the future)"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    for item in sent:
        version, _, signature = item.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return "valid (v1)"
    return "INVALID"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        secret = os.environ.get("DEMO_WHSEC", "")
        verdict = verify(secret, headers, body) if secret else "(set DEMO_WHSEC to check)"
        print(
            f"{self.command} {self.path} webhook-id={headers.get('webhook-id')} "
            f"signature {verdict}\n  body: {body[:200]!r}",
            flush=True,
        )
        self.send_response(200 if verdict.startswith("valid") else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.2:9001", help="HOST:PORT")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    print(f"receiver listening on {host}:{port}", flush=True)  # once it really listens
    server.serve_forever()


if __name__ == "__main__":
    main()
