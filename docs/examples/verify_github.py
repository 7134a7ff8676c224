"""Verify a GitHub-style X-Hub-Signature-256 header signed by hookwall. Standard library only.

Run as a script: reads {"body_b64", "headers", "secret"} JSON on stdin, prints ok or bad.
"""

import base64
import hashlib
import hmac
import json
import sys


def verify_github(body: bytes, signature_headers: list[str], secret: str) -> bool:
    """True if any X-Hub-Signature-256 value matches. body: the raw request bytes.

    signature_headers: every X-Hub-Signature-256 line received (during key rotation there
    is one line per key; some servers join repeated lines with ", ", which works too).
    """
    expected = b"sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    for line in signature_headers:
        for candidate in line.split(","):
            if hmac.compare_digest(candidate.strip().encode(), expected):
                return True
    return False


if __name__ == "__main__":
    case = json.load(sys.stdin)
    lines: list[str] = []
    for name, value in case["headers"].items():
        if name.lower() == "x-hub-signature-256":
            lines += value if isinstance(value, list) else [value]
    ok = verify_github(base64.b64decode(case["body_b64"]), lines, case["secret"])
    print("ok" if ok else "bad")
