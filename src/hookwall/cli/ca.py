"""``hookwall ca``: the CA certificate senders must trust (created on first use)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hookwall.cli.command import Subcommands, add_command
from hookwall.cli.datadir import data_dir


def register(commands: Subcommands) -> None:
    ca = add_command(
        commands,
        "ca",
        cmd_ca,
        help="where senders find the CA certificate to trust",
        description="Create hookwall's CA if needed and print its certificate "
        "(PEM) or, with --path, the file's path.",
    )
    ca.add_argument("--path", action="store_true", help="print the path instead of the PEM")
    ca.add_argument("--data-dir", type=Path, default=None)


def cmd_ca(args: argparse.Namespace) -> int:
    from hookwall.app.ca import ensure_ca

    path = ensure_ca(data_dir(args))
    print(path if args.path else path.read_text(), end="\n" if args.path else "")
    return 0
