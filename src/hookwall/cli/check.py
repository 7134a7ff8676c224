"""``hookwall check``: validate a policy and summarise it (errors are ``main``'s to print)."""

from __future__ import annotations

import argparse

from hookwall.cli.command import Subcommands, add_command
from hookwall.policy import load_policy, summarize


def register(commands: Subcommands) -> None:
    check = add_command(
        commands,
        "check",
        cmd_check,
        help="validate a policy",
        description="Validate a policy. Exit 0 with a summary, or exit 1 "
        "listing every error as FILE:LINE:COL: message.",
    )
    check.add_argument("policy", metavar="FILE_OR_DIR")


def cmd_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    print(summarize(policy))
    print("policy OK")
    return 0
