"""Output for the person at the terminal: colour only where it helps (``--color``, a tty,
``NO_COLOR``), text from senders and receivers made safe to print, lines written at once."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

RESET, BOLD, DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
GREEN, CYAN, YELLOW, RED = "\x1b[32m", "\x1b[36m", "\x1b[33m", "\x1b[31m"


def use_colour(args: argparse.Namespace, stream: IO[str]) -> bool:
    """``--color always|never``, or (auto) on a terminal without ``NO_COLOR``."""
    choice = getattr(args, "color", "auto")
    if choice != "auto":
        return bool(choice == "always")
    return stream.isatty() and not os.environ.get("NO_COLOR")


def status_colour(status: object, decision: object) -> str:
    """Red for a refusal or a 5xx, yellow 4xx, cyan 3xx, green 2xx."""
    if decision == "deny":
        return RED
    if not isinstance(status, int):
        return ""
    return {2: GREEN, 3: CYAN, 4: YELLOW, 5: RED}.get(status // 100, "")


def clean(text: str) -> str:
    """Text from senders and receivers, safe for a terminal: control characters (C0, C1,
    ESC: a header could otherwise repaint the operator's screen) are shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def safe(value: Any) -> Any:
    """``value`` with every string in it ``clean``."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe(v) for v in value]
    return value


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def write_line(line: str) -> None:
    """One line on stdout, flushed (``logs --follow`` shows each exchange as it comes)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
