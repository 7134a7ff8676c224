"""``hookwall keys generate``: a new signing secret for a destination's ``signing:`` section."""

from __future__ import annotations

import argparse
import json
import sys

from hookwall.cli.command import Subcommands, add_command


def register(commands: Subcommands) -> None:
    keys = add_command(
        commands,
        "keys",
        cmd_keys,
        help="signing keys",
        description="Signing keys for destinations' signing: sections.",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = keys_sub.add_parser(
        "generate",
        help="print a new signing secret",
        description="Print a new random secret for a signing scheme on stdout (one line, fit "
        "to pipe into a secret store); its key id, and for Ed25519 the public key receivers "
        "verify with, go to stderr. Then reference it from the policy as env:NAME or "
        "file:PATH; never paste it into the policy itself.",
        epilog="example:\n  hookwall keys generate --scheme standard-webhooks > /run/secrets/acme\n"
        "  # policy: signing: {scheme: standard-webhooks, secrets: [file:/run/secrets/acme]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument(
        "--scheme", required=True, choices=("standard-webhooks", "github", "stripe", "hmac")
    )
    generate.add_argument(
        "--ed25519",
        action="store_true",
        help="standard-webhooks only: an Ed25519 key pair (v1a signatures) instead of HMAC",
    )
    generate.add_argument("--json", action="store_true", help="secret, key id, public key as JSON")


def cmd_keys(args: argparse.Namespace) -> int:
    """``keys generate``, the one action (``keys`` requires it)."""
    from hookwall.signing.keys import generate_key

    if args.ed25519 and args.scheme != "standard-webhooks":
        print("hookwall keys: --ed25519 is for --scheme standard-webhooks", file=sys.stderr)
        return 2
    key = generate_key(args.scheme, ed25519=args.ed25519)
    if args.json:
        fields = {"scheme": args.scheme, "secret": key.secret, "key_id": key.key_id}
        print(json.dumps(fields | ({"public_key": key.public_key} if key.public_key else {})))
        return 0
    print(key.secret)
    print(f"# key id: {key.key_id}", file=sys.stderr)
    if key.public_key:
        print(f"# public key for receivers (v1a): {key.public_key}", file=sys.stderr)
    return 0
