"""Where hookwall keeps its CA and its delivery store: ``--data-dir``, else
``$HOOKWALL_DATA_DIR``, else ``$XDG_DATA_HOME/hookwall`` (``~/.local/share/hookwall``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def default_data_dir() -> Path:
    if env := os.environ.get("HOOKWALL_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hookwall"


def data_dir(args: argparse.Namespace) -> Path:
    """The command's ``--data-dir``, or the default when it was not given."""
    given = getattr(args, "data_dir", None)
    return Path(given) if given else default_data_dir()
