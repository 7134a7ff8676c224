"""``hookwall schema``: the policy file's JSON Schema, for editors and CI linters."""

from __future__ import annotations

import argparse
import sys

from hookwall.cli.command import Subcommands, add_command


def register(commands: Subcommands) -> None:
    add_command(
        commands,
        "schema",
        cmd_schema,
        help="print the policy file's JSON Schema",
        description="Print the JSON Schema of a policy file, generated from the code that "
        "validates policies. Editors complete and check policy files with it: put "
        "'# yaml-language-server: $schema=PATH' at the top of a policy (VS Code's YAML "
        "extension reads it). A schema checks each key and value; only hookwall check "
        "judges a whole policy (hosts listed twice, exceptions into special-purpose "
        "space, unknown senders, secrets).",
        epilog="example: hookwall schema > hookwall.schema.json",
    )


def cmd_schema(args: argparse.Namespace) -> int:
    from hookwall.policy.jsonschema import policy_json_schema_text

    sys.stdout.write(policy_json_schema_text())
    return 0
