"""Output for the person at the terminal: colour only where it helps (``--color``, a tty,
``NO_COLOR``), the terminal's width (``COLUMNS`` first), text from senders and receivers made
safe to print (``core/printable.py``), lines written at once."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

from rich.console import Console

from hookwall.core.printable import clean, clean_all

__all__ = [
    "BOLD", "CYAN", "DIM", "GREEN", "RED", "RESET", "YELLOW",
    "clean", "fit", "safe", "status_colour", "status_style", "terminal_width", "use_colour",
    "write_line",
]  # fmt: skip

RESET, BOLD, DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
GREEN, CYAN, YELLOW, RED = "\x1b[32m", "\x1b[36m", "\x1b[33m", "\x1b[31m"


def use_colour(args: argparse.Namespace, stream: IO[str]) -> bool:
    """``--color always|never``, or (auto) on a terminal without ``NO_COLOR``."""
    choice = getattr(args, "color", "auto")
    if choice != "auto":
        return bool(choice == "always")
    return stream.isatty() and not os.environ.get("NO_COLOR")


def status_style(status: object, decision: object) -> str:
    """A rich style name: red for a refusal or a 5xx, yellow 4xx, cyan 3xx, green 2xx."""
    if decision == "deny":
        return "red"
    if not isinstance(status, int):
        return ""
    return {2: "green", 3: "cyan", 4: "yellow", 5: "red"}.get(status // 100, "")


_ANSI = {"red": RED, "yellow": YELLOW, "cyan": CYAN, "green": GREEN, "": ""}


def status_colour(status: object, decision: object) -> str:
    """``status_style`` as an escape sequence, for lines written without rich."""
    return _ANSI[status_style(status, decision)]


def safe(value: Any) -> Any:
    """``value`` with every string in it ``clean``."""
    return clean_all(value)


def terminal_width(stream: IO[str]) -> int | None:
    """The width to lay a table out in: ``COLUMNS``, else the terminal's; None when
    ``stream`` is not a terminal (piped output is laid out the same whatever the width)."""
    try:
        if not stream.isatty():
            return None
    except ValueError:  # closed
        return None
    return Console(file=stream).width


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def write_line(line: str) -> None:
    """One line on stdout, flushed (``logs --follow`` shows each exchange as it comes)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
