"""Text from senders and receivers made safe for a terminal: what ``hookwall logs`` prints
and what ``hookwall run --log-format console`` writes both go through ``clean``."""

from __future__ import annotations

from typing import Any


def clean(text: str) -> str:
    """``text`` with its control characters (C0, C1, ESC, DEL; also newlines, which would
    forge a line, and the other non-printable ones) shown escaped, as Python writes them:
    a header could otherwise repaint the operator's screen or retitle the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clean_all(value: Any) -> Any:
    """``value`` with every string in it ``clean``, dict keys too."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean_all(k): clean_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_all(v) for v in value]
    return value
