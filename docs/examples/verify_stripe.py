"""Verify a Stripe-Signature header signed by hookwall. Standard library only.

(The official `stripe` package's stripe.WebhookSignature.verify_header does the same.)
Run as a script: reads {"body_b64", "headers", "secret"} JSON on stdin, prints ok or bad.
"""

import base64
import hashlib
import hmac
import json
import sys
import time

TOLERANCE_SECONDS = 5 * 60


def verify_stripe(
    body: bytes, stripe_signature: str, secret: str, now: float | None = None
) -> bool:
    """True if any v1 signature matches. body: the raw request bytes, as received.

    secret: the whsec_... string as is (it is NOT base64-decoded in this scheme).
    """
    timestamp, signatures = "", []
    for item in stripe_signature.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False  # too old (a replay?) or too far in the future
    signed = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(s.encode(), expected) for s in signatures)


if __name__ == "__main__":
    case = json.load(sys.stdin)
    headers = {name.lower(): value for name, value in case["headers"].items()}
    ok = verify_stripe(
        base64.b64decode(case["body_b64"]), headers.get("stripe-signature", ""), case["secret"]
    )
    print("ok" if ok else "bad")
