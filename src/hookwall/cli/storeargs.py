"""The options of the commands that read the delivery store (``logs``, ``logs show``,
``replay``, ``send-test``): ``--data-dir``, ``--json``, ``--color``; and the store they open."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hookwall.cli.datadir import data_dir
from hookwall.deliveries.store import Store, store_path


def add_output_args(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    """``suppress`` (for ``logs show``): no defaults, so ``logs --json show ID`` keeps what
    the ``logs`` level parsed."""
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default,
        help="hookwall's data dir, where the store is (default $HOOKWALL_DATA_DIR or "
        "~/.local/share/hookwall)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="JSON output",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=argparse.SUPPRESS if suppress else "auto",
        help="colour (default: auto, on a terminal without NO_COLOR)",
    )


def open_store(args: argparse.Namespace) -> Store:
    """The store of ``--data-dir``, read-only (``StoreError`` if there is none)."""
    return Store.open_readonly(store_path(data_dir(args)))
