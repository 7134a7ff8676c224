"""Captured bodies made readable for ``logs show``: decompressed when whole, JSON
pretty-printed, text as it is; binary data (``None`` here) is the caller's to base64."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any


def _header(headers: list[tuple[str, str]] | None, name: str) -> str | None:
    return next((v for k, v in headers or [] if k.lower() == name), None)


def readable(body: bytes, truncated: bool, headers: list[tuple[str, str]] | None) -> str | None:
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


def body_document(
    body: bytes | None, truncated: bool, headers: list[tuple[str, str]] | None
) -> dict[str, Any] | None:
    """A captured body for ``logs show --json``: its text, or base64 when binary."""
    if body is None:
        return None
    text = readable(body, truncated, headers)
    doc: dict[str, Any] = {"captured_bytes": len(body), "truncated": truncated}
    if text is not None:
        doc["text"] = text
    else:
        doc["base64"] = base64.b64encode(body).decode()
    return doc
