"""``--policy`` and ``--dns-server``, which ``run`` and ``explain`` share, and the policy and
the resolver they give."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hookwall.policy import Policy, load_default_policy, load_policy

if TYPE_CHECKING:
    from hookwall.destinations.resolver import Resolver


def _dns_server(text: str) -> tuple[str, int]:
    from hookwall.destinations.settings import parse_server

    try:
        return parse_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        metavar="FILE_OR_DIR",
        help="policy YAML file or directory of *.yaml files (default: the built-in policy, "
        "which denies every internal address and allows ports 80 and 443)",
    )
    p.add_argument(
        "--dns-server",
        metavar="IP[:PORT]",
        action="append",
        type=_dns_server,
        default=[],
        help="DNS server to resolve destinations with; repeat for several "
        "(default: the policy's dns.servers, else the system's resolv.conf)",
    )


def add_no_secrets_arg(p: argparse.ArgumentParser) -> None:
    """``--no-secrets`` for the commands that judge a policy without running it."""
    p.add_argument(
        "--no-secrets",
        action="store_true",
        help="check each env:NAME / file:PATH secret reference for its form without reading "
        "it, for CI and pre-commit hooks where production secrets are absent (hookwall run "
        "always reads them)",
    )


def policy_of(path: str | None, *, read_secrets: bool = True) -> Policy:
    """The ``--policy`` given, or the built-in one."""
    return load_policy(path, read_secrets=read_secrets) if path else load_default_policy()


def resolver_for(policy: Policy, servers: Sequence[tuple[str, int]]) -> Resolver:
    """The resolver the proxy would use: ``--dns-server`` if given, else the policy's."""
    from hookwall.destinations.resolver import Resolver

    dns = policy.dns
    return Resolver(
        servers or dns.servers,
        timeout=dns.timeout,
        max_ttl=dns.max_ttl,
        cache_size=dns.cache_size,
    )
