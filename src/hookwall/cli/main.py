"""The ``hookwall`` command: the parser, built from one module per command, and the dispatch.

Each command module (``run``, ``check``, ``explain``, ``keys``, ``ca``, ``logs`` with its
``show``, ``replay``, ``send-test``, ``doctor``, ``redirect-rules``, ``completion``) adds its
own sub-parser with its handler (``cli/command.py``); ``main`` parses, calls the handler and
turns a policy error or Ctrl-C into an exit status. The command modules never import this
one: ``completion`` gets the parser as ``args.root_parser``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from hookwall import __version__
from hookwall.cli import (
    ca,
    check,
    completion,
    doctor,
    explain,
    keys,
    logs,
    redirect_rules,
    replay,
    run,
    schema,
    send_test,
)
from hookwall.cli.command import Subcommands, handler_of
from hookwall.policy import PolicyError

EPILOG = """\
examples:
  hookwall run                                   proxy on 127.0.0.1:8080, built-in default policy
  hookwall run --policy policies/ --listen 0.0.0.0:8080   (the policy must define senders)
  hookwall check policies/prod.yaml              validate a policy (exit 1 and every error)
  hookwall check --no-secrets policies/          ... in CI, without the production secrets
  hookwall schema > hookwall.schema.json         the policy's JSON Schema, for editors
  hookwall explain http://localhost:3000/hook    what the proxy would do, without sending
  hookwall explain https://api.pay.example/ --sender billing   ... for one sender
  hookwall keys generate --scheme standard-webhooks   a new signing secret
  hookwall ca --path                             the CA certificate senders must trust
  hookwall logs --host hooks.acme.com --since 1d --status 5xx   what happened to deliveries
  hookwall logs show req_...                     one delivery in full (also: hookwall replay)
  hookwall send-test https://hooks.acme.com/x    a sample webhook through the proxy
  hookwall doctor                                run where a sender runs: its proxy and CA set-up
  hookwall completion bash                       a completion script (also zsh, fish)

senders then set HTTP_PROXY=http://127.0.0.1:8080 and HTTPS_PROXY=http://127.0.0.1:8080
(with senders in the policy: HTTP_PROXY=http://NAME:TOKEN@host:8080).
"""

# Each command's register(), in the order `hookwall --help` lists them.
COMMANDS: tuple[Callable[[Subcommands], None], ...] = (
    run.register,
    check.register,
    schema.register,
    explain.register,
    keys.register,
    ca.register,
    logs.register,
    replay.register,
    send_test.register,
    doctor.register,
    redirect_rules.register,
    completion.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookwall",
        description="hookwall: an egress proxy for outbound webhooks. It refuses every "
        "delivery to an internal address (SSRF), pins each connection to the IP it checked, "
        "and logs one JSON event per delivery.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hookwall {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --workers starts N of it
    args.root_parser = parser  # hookwall completion: the script is generated from it
    try:
        return handler_of(args)(args)
    except PolicyError as exc:
        print(f"hookwall: the policy has errors:\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
