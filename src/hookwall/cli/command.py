"""What every command module shares: how it plugs into ``hookwall`` (its sub-parser, with the
handler ``main`` calls) and how it reports a bad argument.

A command module has ``register(commands)``, which adds its sub-parser with ``add_command``;
``main`` builds the parser from those and calls the handler of the command given. The modules
never import ``main``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

# argparse's type for the object add_subparsers() returns (not public, but the one typeshed names).
type Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
type Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A bad argument: exit 2 with the message."""


def add_command(
    commands: Subcommands, name: str, handler: Handler, **parser_args: Any
) -> argparse.ArgumentParser:
    """Add the sub-parser ``name`` (``parser_args`` as for ``add_parser``), run by ``handler``."""
    parser = commands.add_parser(name, **parser_args)
    parser.set_defaults(handler=handler)
    return parser


def handler_of(args: argparse.Namespace) -> Handler:
    """The handler of the command ``args`` were parsed for (set by ``add_command``)."""
    handler: Handler = args.handler
    return handler
