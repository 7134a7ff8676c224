"""``hookwall check``: validate a policy and summarise it (errors are ``main``'s to print)."""

from __future__ import annotations

import argparse

from hookwall.cli.command import Subcommands, add_command
from hookwall.cli.policyargs import add_no_secrets_arg
from hookwall.policy import load_policy, summarize


def register(commands: Subcommands) -> None:
    check = add_command(
        commands,
        "check",
        cmd_check,
        help="validate a policy",
        description="Validate a policy. Exit 0 with a summary, or exit 1 "
        "listing every error as FILE:LINE:COL: message. Secret references are read "
        "(a variable that is not set is an error) unless --no-secrets is given.",
        epilog="in CI or a pre-commit hook: hookwall check --no-secrets policies/",
    )
    check.add_argument("policy", metavar="FILE_OR_DIR")
    add_no_secrets_arg(check)


def cmd_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy, read_secrets=not args.no_secrets)
    print(summarize(policy))
    print("policy OK")
    return 0
