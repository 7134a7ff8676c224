"""``hookwall redirect-rules``: print the iptables or nft rules that send senders' outbound TCP
to ``hookwall run --mode transparent`` (the rules themselves: ``transparent/rules.py``).

It prints and never applies: the operator pipes the text into the tool that applies it in
one transaction, and can read it first.
"""

from __future__ import annotations

import argparse
import sys

from hookwall.cli.command import Subcommands, add_command
from hookwall.transparent.rules import (
    DEFAULT_PORT,
    FORMATS,
    RuleError,
    parse_format,
    redirect_from_args,
    removal,
    render,
)

DESCRIPTION = """\
Print the rules that redirect senders' outbound TCP to hookwall's transparent listener
(hookwall run --mode transparent --listen 127.0.0.1:PORT), for iptables-restore,
ip6tables-restore or nft -f. Nothing is applied: pipe the text into the tool.

What is redirected (the nat table's OUTPUT hook, so connections made on this host or pod):
  --uid UID / --cgroup PATH   the outbound TCP of those users or cgroups (v2), or, with
                              neither, every user's but hookwall's own (the sidecar pattern:
                              hookwall in a pod of its own senders).
Every destination is redirected, loopback included: a sender reaching 127.0.0.1 or ::1 is
the SSRF hookwall must stop. --exclude-cidr and --exclude-port are the only exceptions.
Never redirected: hookwall's own connections (--exempt-uid, the uid hookwall runs as;
required, and never one of --uid) and connections to hookwall's own port.
"""

EPILOG = """\
apply (each in one transaction; the rules live in their own chain or table):
  hookwall redirect-rules --exempt-uid 1337 --format iptables | iptables-restore --noflush
  hookwall redirect-rules --exempt-uid 1337 --format ip6tables | ip6tables-restore --noflush
  hookwall redirect-rules --exempt-uid 1337 --format nft | nft -f -     (IPv4 and IPv6)
  hookwall redirect-rules --uid 1000 --exempt-uid 1337 --exclude-cidr 10.0.5.7/32:5432 ...
  iptables: apply both families (an IPv6 connection, to ::1 too, escapes IPv4-only rules).
  Applying again replaces the rules at once; with iptables it also adds a second jump from
  OUTPUT (harmless, but --remove then needs one manual -D first). nft replaces its table.

check:
  iptables -t nat -S HOOKWALL_OUTPUT ; ip6tables -t nat -S HOOKWALL_OUTPUT
  iptables -t nat -S OUTPUT          (one jump: -A OUTPUT -p tcp -j HOOKWALL_OUTPUT)
  nft list table inet hookwall

remove (everything it added, nothing else):
  hookwall redirect-rules --remove --format iptables | iptables-restore --noflush
  hookwall redirect-rules --remove --format ip6tables | ip6tables-restore --noflush
  hookwall redirect-rules --remove --format nft | nft -f -

The cgroup of --cgroup must exist when the rules are applied (both tools resolve it then);
nft also needs the cgroup v2 hierarchy mounted at /sys/fs/cgroup. Only TCP is redirected:
block UDP egress (QUIC, DNS elsewhere than your resolver) with a firewall or NetworkPolicy.
"""


def register(commands: Subcommands) -> None:
    parser = add_command(
        commands,
        "redirect-rules",
        cmd_redirect_rules,
        help="print iptables/nft rules that send senders' TCP to hookwall (transparent mode)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--uid",
        dest="uids",
        metavar="UID",
        action="append",
        default=[],
        help="redirect this user's connections (numeric; repeatable)",
    )
    parser.add_argument(
        "--cgroup",
        dest="cgroups",
        metavar="PATH",
        action="append",
        default=[],
        help="redirect the connections of the processes in this cgroup v2 (and below it), "
        "a path below the root such as system.slice/billing.service (repeatable)",
    )
    parser.add_argument(
        "--exempt-uid",
        metavar="UID",
        help="the uid hookwall runs as: its connections are never redirected (required)",
    )
    parser.add_argument(
        "--port",
        metavar="PORT",
        default=str(DEFAULT_PORT),
        help=f"hookwall's transparent port on loopback (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--exclude-cidr",
        dest="exclude_cidrs",
        metavar="CIDR[:PORT]",
        action="append",
        default=[],
        help="reached directly, not through hookwall: a network (10.0.0.0/8), or one port "
        "of it (127.0.0.1/32:5432); repeatable",
    )
    parser.add_argument(
        "--exclude-port",
        dest="exclude_ports",
        metavar="PORT",
        action="append",
        default=[],
        help="reached directly on every address (the internet's too: prefer "
        "--exclude-cidr CIDR:PORT); repeatable",
    )
    parser.add_argument(
        "--format",
        metavar="{" + ",".join(FORMATS) + "}",
        help="iptables (IPv4, iptables-restore), ip6tables (IPv6, ip6tables-restore) or "
        "nft (both, nft -f; table inet hookwall); required",
    )
    parser.add_argument(
        "--remove",
        action="store_true",
        help="print what removes the rules instead (the other options are not needed)",
    )


def cmd_redirect_rules(args: argparse.Namespace) -> int:
    try:
        fmt = parse_format(args.format)
        if args.remove:
            text = removal(fmt)
        else:
            redirect = redirect_from_args(
                port=args.port,
                exempt_uid=args.exempt_uid,
                uids=args.uids,
                cgroups=args.cgroups,
                exclude_cidrs=args.exclude_cidrs,
                exclude_ports=args.exclude_ports,
            )
            text = render(redirect, fmt)
    except RuleError as exc:
        print(f"hookwall redirect-rules: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0
