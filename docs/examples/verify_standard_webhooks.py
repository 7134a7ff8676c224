"""Verify a Standard Webhooks request signed by hookwall: v1 (HMAC-SHA256) or v1a (Ed25519).

Standard library only, plus `cryptography` (pip install cryptography) for v1a.
Run as a script: reads {"body_b64", "headers", "secret"} JSON on stdin, prints ok or bad.
"""

import base64
import hashlib
import hmac
import json
import sys
import time

TOLERANCE_SECONDS = 5 * 60


def verify_standard_webhooks(
    body: bytes,
    webhook_id: str,
    webhook_timestamp: str,
    webhook_signature: str,
    secret: str,
    now: float | None = None,
) -> bool:
    """True if any listed signature matches. body: the raw request bytes, as received.

    secret: "whsec_..." checks the v1 (HMAC) signatures; "whpk_..." (an Ed25519 public
    key) checks the v1a signatures. Versions you do not check are skipped.
    """
    if not (webhook_timestamp.isascii() and webhook_timestamp.isdigit()):
        return False
    now = time.time() if now is None else now
    if abs(now - int(webhook_timestamp)) > TOLERANCE_SECONDS:
        return False  # too old (a replay?) or too far in the future
    signed = f"{webhook_id}.{webhook_timestamp}.".encode() + body
    entries = [entry.partition(",") for entry in webhook_signature.split()]

    if secret.startswith("whsec_"):
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        for version, _, value in entries:
            if version == "v1":
                try:
                    candidate = base64.b64decode(value, validate=True)
                except ValueError:
                    continue
                if hmac.compare_digest(candidate, expected):
                    return True
        return False

    if secret.startswith("whpk_"):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        public_key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(secret.removeprefix("whpk_"))
        )
        for version, _, value in entries:
            if version == "v1a":
                try:
                    public_key.verify(base64.b64decode(value, validate=True), signed)
                    return True
                except (ValueError, InvalidSignature):
                    continue
        return False

    raise ValueError("the secret must start with whsec_ (HMAC) or whpk_ (Ed25519 public key)")


if __name__ == "__main__":
    case = json.load(sys.stdin)
    headers = {name.lower(): value for name, value in case["headers"].items()}
    ok = verify_standard_webhooks(
        base64.b64decode(case["body_b64"]),
        headers.get("webhook-id", ""),
        headers.get("webhook-timestamp", ""),
        headers.get("webhook-signature", ""),
        case["secret"],
    )
    print("ok" if ok else "bad")
