"""Verify hookwall's generic HMAC scheme (one configurable header). Standard library only.

Covers value templates of the form "<prefix>{signature}", over the body or, with a timestamp
header, over timestamp + separator + body. Run as a script: reads {"body_b64", "headers",
"secret", "options"} JSON on stdin, prints ok or bad.
"""

import base64
import hmac
import json
import sys
import time

TOLERANCE_SECONDS = 5 * 60


def verify_generic_hmac(
    body: bytes,
    header_value: str,
    secret: str,
    *,
    algorithm: str = "sha256",  # or "sha512"
    encoding: str = "hex",  # or "base64"
    prefix: str = "",  # the text before {signature} in the template, e.g. "sha256="
    timestamp: str | None = None,  # the timestamp header's value, if the scheme sends one
    separator: str = ".",
    now: float | None = None,
) -> bool:
    """True if any of the ", "-separated values matches. body: the raw request bytes."""
    signed = body
    if timestamp is not None:
        if not (timestamp.isascii() and timestamp.isdigit()):
            return False
        now = time.time() if now is None else now
        if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
            return False  # too old (a replay?) or too far in the future
        signed = f"{timestamp}{separator}".encode() + body
    digest = hmac.new(secret.encode(), signed, algorithm).digest()
    encoded = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    expected = (prefix + encoded).encode()
    return any(hmac.compare_digest(v.strip().encode(), expected) for v in header_value.split(", "))


if __name__ == "__main__":
    case = json.load(sys.stdin)
    options = dict(case.get("options", {}))
    headers = {name.lower(): value for name, value in case["headers"].items()}
    timestamp_header = options.pop("timestamp_header", None)
    ok = verify_generic_hmac(
        base64.b64decode(case["body_b64"]),
        headers.get(options.pop("header", "x-signature").lower(), ""),
        case["secret"],
        timestamp=headers.get(timestamp_header.lower(), "") if timestamp_header else None,
        **options,
    )
    print("ok" if ok else "bad")
