"""The rule sets that send senders' outbound TCP to hookwall's transparent listener.

``hookwall run --mode transparent`` reads each connection's original destination from the
redirected socket (SO_ORIGINAL_DST); these rules do the redirecting, in the nat table's
OUTPUT hook, where the kernel sees which user (or cgroup) opened a connection. They come as
an ``iptables-restore`` input (IPv4, or IPv6 for ``ip6tables-restore``) or an ``nft -f``
file (both families), and every one is applied in one transaction. This module only writes
text from plain values: it runs nothing and reads no system state, so the same arguments
always print the same rules.

What every rule set keeps, whatever it is asked:

- hookwall's own traffic (``--exempt-uid``, the uid hookwall runs as) is never redirected:
  hookwall's connections to receivers would come back to hookwall. A ``Redirect`` that would
  redirect that uid cannot be built.
- Connections to hookwall's own port on loopback are left alone (no redirect onto itself).
- Loopback destinations are redirected like every other: a sender reaching 127.0.0.1 is
  exactly the SSRF hookwall is there to stop. Only ``--exclude-cidr``/``--exclude-port``
  make exceptions, and none may exclude a whole address family.

- hookwall's own connections are tracked in a conntrack zone of their own (``ZONE``, in the
  original direction). A sender's redirected connection that hookwall ended with a reset
  stays tracked for seconds with its NAT binding; hookwall's next connection to the same
  receiver, from the same address, may get the same source port, and in the shared zone it
  would match that entry and be sent to the redirect's target (hookwall itself) instead of
  the receiver.

The rules live in their own chains (iptables: ``HOOKWALL_OUTPUT`` in nat and
``HOOKWALL_ZONE`` in raw, each jumped to first from ``OUTPUT``) or their own table (nft:
``table inet hookwall``), so removing them touches nothing else.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CHAIN",
    "DEFAULT_PORT",
    "FORMATS",
    "MAX_UID",
    "NFT_PRIORITY",
    "TABLE",
    "ZONE",
    "ZONE_CHAIN",
    "Exclusion",
    "Format",
    "Redirect",
    "RuleError",
    "parse_cgroup",
    "parse_exclusion",
    "parse_format",
    "parse_port",
    "parse_uid",
    "redirect_from_args",
    "removal",
    "render",
]

type Format = Literal["iptables", "ip6tables", "nft"]
type Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORMATS: tuple[Format, ...] = ("iptables", "ip6tables", "nft")
CHAIN = "HOOKWALL_OUTPUT"
ZONE_CHAIN = "HOOKWALL_ZONE"  # raw table: hookwall's own connections' conntrack zone
ZONE = 18519  # 0x4857, "HW": a zone no other tool is likely to pick (zones are 16 bits)
TABLE = "hookwall"  # nft: table inet hookwall
DEFAULT_PORT = 8081
MAX_UID = 2**32 - 2  # (uid_t)-1 means "no uid" to the kernel
# nat chains at one hook run in priority order and the first that maps a connection wins:
# below iptables' own nat OUTPUT (-100, dstnat), so Docker's or kube-proxy's rules in that
# chain cannot rewrite a sender's destination before hookwall's redirect sees it.
NFT_PRIORITY = -110

_LOOPBACK = {4: "127.0.0.1", 6: "::1"}
_WHAT = {
    "iptables": "IPv4, iptables-restore input",
    "ip6tables": "IPv6, ip6tables-restore input",
    "nft": "IPv4 and IPv6, nft -f input",
}
# A cgroup v2 path below the hierarchy's root: names of safe characters, no . or ..
_CGROUP_NAME = re.compile(r"[A-Za-z0-9_@:+-][A-Za-z0-9._@:+-]*")
_DIGITS = re.compile(r"[0-9]{1,10}")
_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class RuleError(ValueError):
    """An argument that cannot make a safe rule set; the message says what to give instead."""


# -- the arguments, parsed -----------------------------------------------------------------


def parse_uid(text: str, flag: str = "--uid") -> int:
    """A numeric uid, 0 to 2^32-2 (a user name is refused: rules match numbers)."""
    value = text.strip()
    if _number(value, MAX_UID) is None:
        hint = f" (for the user {value}: id -u {value})" if _USER_NAME.fullmatch(value) else ""
        raise RuleError(f"{flag} {text!r}: a uid is a number from 0 to {MAX_UID}{hint}")
    return int(value)


def _number(text: str, high: int) -> int | None:
    value = text.strip()
    return int(value) if _DIGITS.fullmatch(value) and int(value) <= high else None


def parse_port(text: str, flag: str = "--port") -> int:
    port = _number(text, 65535)
    if not port:
        raise RuleError(f"{flag} {text!r}: a port is a number from 1 to 65535")
    return port


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Connections to ``network`` (on ``port`` only, when given) that are not redirected."""

    network: Network
    port: int | None = None

    def __post_init__(self) -> None:
        if self.network.prefixlen == 0:
            family = f"IPv{self.network.version}"
            raise RuleError(
                f"--exclude-cidr {self.network}: that is every {family} address, so nothing "
                f"of {family} would go through hookwall; name the networks the sender may "
                "reach directly (e.g. a database's address/32)"
            )
        if self.port is not None and not 1 <= self.port <= 65535:
            raise RuleError(f"--exclude-cidr {self}: a port is a number from 1 to 65535")

    def __str__(self) -> str:
        return f"{self.network}" + ("" if self.port is None else f":{self.port}")


def parse_exclusion(text: str) -> Exclusion:
    """``CIDR`` (every port of it) or ``CIDR:PORT``, the prefix length always written: in
    ``::1:5432`` nothing could tell the port from the address."""
    head, slash, tail = text.strip().rpartition("/")
    if not slash:
        raise RuleError(
            f"--exclude-cidr {text!r}: the /LEN is missing; one address is ADDRESS/32 (IPv4) "
            "or ADDRESS/128 (IPv6), one port of it ADDRESS/32:PORT"
        )
    length, colon, port_text = tail.partition(":")
    port = _number(port_text, 65535) if colon else None
    if colon and not port:
        raise RuleError(f"--exclude-cidr {text!r}: {port_text!r} is not a port (1 to 65535)")
    try:
        network = ipaddress.ip_network(f"{head}/{length}", strict=True)
    except ValueError as exc:
        reason = str(exc)
        if "host bits set" in reason:
            loose = ipaddress.ip_network(f"{head}/{length}", strict=False)
            reason = f"it has host bits set; the network is {loose}"
        raise RuleError(
            f"--exclude-cidr {text!r}: not a CIDR ({reason}); write e.g. 10.0.0.0/8, "
            "fd00::/8, or 127.0.0.1/32:5432 for one port of it"
        ) from None
    return Exclusion(network, port)


def parse_cgroup(text: str) -> str:
    """A cgroup v2 path below the root (``system.slice/billing.service``), without a leading /.

    Both tools resolve it when the rules are loaded, so the cgroup must exist by then.
    """
    value = text.strip()
    if value.startswith("/sys/fs/cgroup"):
        raise RuleError(
            f"--cgroup {text!r}: give the path below the cgroup v2 root, as "
            "/proc/PID/cgroup shows it after '0::' (e.g. system.slice/billing.service), "
            "not the path where the hierarchy is mounted"
        )
    parts = value.strip("/").split("/")
    if not value.strip("/") or not all(_CGROUP_NAME.fullmatch(part) for part in parts):
        raise RuleError(
            f"--cgroup {text!r}: expected a cgroup v2 path such as system.slice/billing.service "
            "(names of letters, digits and . _ @ : + -, separated by /; not the root cgroup)"
        )
    return "/".join(parts)


def parse_format(text: str | None) -> Format:
    for name in FORMATS:
        if text == name:
            return name
    given = "is required" if text is None else f"{text!r} is not one of them"
    raise RuleError(
        f"--format {given}: iptables (IPv4, for iptables-restore), ip6tables (IPv6, for "
        "ip6tables-restore) or nft (both, for nft -f)"
    )


# -- what to redirect ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Redirect:
    """Whose outbound TCP goes to hookwall's ``port``: the ``uids`` and ``cgroups`` named, or
    (neither named, the sidecar pattern) every user's but ``exempt_uid``'s."""

    port: int
    exempt_uid: int
    uids: tuple[int, ...] = ()
    cgroups: tuple[str, ...] = ()
    exclude: tuple[Exclusion, ...] = ()
    exclude_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for port in (self.port, *self.exclude_ports):
            if not 1 <= port <= 65535:
                raise RuleError(f"port {port}: a port is a number from 1 to 65535")
        for uid in (self.exempt_uid, *self.uids):
            if not 0 <= uid <= MAX_UID:
                raise RuleError(f"uid {uid}: a uid is a number from 0 to {MAX_UID}")
        if self.exempt_uid in self.uids:
            raise RuleError(
                f"--uid {self.exempt_uid} is --exempt-uid, the uid hookwall runs as: hookwall's "
                "own connections are never redirected (they would come back to hookwall); "
                "give the senders' uids, or run hookwall as a user of its own"
            )
        if self.port in self.exclude_ports:
            raise RuleError(
                f"--exclude-port {self.port} is hookwall's own --port; connections to hookwall "
                "are never redirected anyway, and excluding that port everywhere would let "
                "senders reach that port of any address directly"
            )

    @property
    def everyone(self) -> bool:
        """No uid or cgroup named: every user's connections but hookwall's are redirected."""
        return not self.uids and not self.cgroups

    def arguments(self) -> list[str]:
        """The ``hookwall redirect-rules`` arguments that give this redirect, in one order."""
        args: list[str] = []
        for uid in self.uids:
            args += ["--uid", str(uid)]
        for cgroup in self.cgroups:
            args += ["--cgroup", cgroup]
        args += ["--exempt-uid", str(self.exempt_uid), "--port", str(self.port)]
        for exclusion in self.exclude:
            args += ["--exclude-cidr", str(exclusion)]
        for port in self.exclude_ports:
            args += ["--exclude-port", str(port)]
        return args


def _unique[T](items: Iterable[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))


def redirect_from_args(
    *,
    port: str,
    exempt_uid: str | None,
    uids: Sequence[str] = (),
    cgroups: Sequence[str] = (),
    exclude_cidrs: Sequence[str] = (),
    exclude_ports: Sequence[str] = (),
) -> Redirect:
    """A ``Redirect`` from the command line's strings, or a ``RuleError`` saying what is wrong."""
    if exempt_uid is None:
        raise RuleError(
            "--exempt-uid is required: the uid hookwall runs as, whose own connections are "
            "never redirected (they would come back to hookwall), e.g. --exempt-uid 1337"
        )
    return Redirect(
        port=parse_port(port),
        exempt_uid=parse_uid(exempt_uid, "--exempt-uid"),
        uids=_unique(parse_uid(text) for text in uids),
        cgroups=_unique(parse_cgroup(text) for text in cgroups),
        exclude=_unique(parse_exclusion(text) for text in exclude_cidrs),
        exclude_ports=_unique(parse_port(text, "--exclude-port") for text in exclude_ports),
    )


# -- the text ------------------------------------------------------------------------------


def _command(args: Sequence[str]) -> str:
    return shlex.join(["hookwall", "redirect-rules", *args])


def _apply_with(fmt: Format) -> str:
    return {
        "iptables": "iptables-restore --noflush",
        "ip6tables": "ip6tables-restore --noflush",
        "nft": "nft -f -",
    }[fmt]


def _check_with(fmt: Format) -> str:
    if fmt == "nft":
        return f"nft list table inet {TABLE}"
    return f"{fmt} -t nat -S {CHAIN}"


def _whose(redirect: Redirect) -> str:
    if redirect.everyone:
        return f"every user but uid {redirect.exempt_uid} (hookwall's own)"
    named = [f"uid {uid}" for uid in redirect.uids]
    named += [f"cgroup {cgroup}" for cgroup in redirect.cgroups]
    return ", ".join(named) + f" (never uid {redirect.exempt_uid}, hookwall's own)"


def _exceptions(redirect: Redirect, families: Sequence[int]) -> str:
    excluded = [str(e) for e in redirect.exclude if e.network.version in families]
    excluded += [f"port {port} of every address" for port in redirect.exclude_ports]
    return ", ".join(excluded) if excluded else "none"


def _header(redirect: Redirect, fmt: Format, families: Sequence[int]) -> list[str]:
    args = [*redirect.arguments(), "--format", fmt]
    target = " and ".join(
        f"{_LOOPBACK[f]}:{redirect.port}" if f == 4 else f"[::1]:{redirect.port}" for f in families
    )
    what = _WHAT[fmt]
    lines = [
        f"# hookwall redirect-rules ({what})",
        f"# Redirects the outbound TCP of {_whose(redirect)}",
        f"# to hookwall run --mode transparent on {target}, loopback destinations included.",
        "# Never redirected: hookwall's own connections, connections to hookwall's port.",
        f"# Excluded (--exclude-cidr, --exclude-port): {_exceptions(redirect, families)}.",
        f"# apply:  {_command(args)} | {_apply_with(fmt)}",
        f"# check:  {_check_with(fmt)}",
        f"# remove: {_command(['--remove', '--format', fmt])} | {_apply_with(fmt)}",
    ]
    if fmt == "iptables":
        lines.append("# IPv6 needs its own rules: the same arguments with --format ip6tables.")
    return lines


_ZONE_WHY = (
    "# hookwall's own connections in a conntrack zone of their own (original direction):",
    "# a sender's redirected connection just reset, still tracked with its NAT binding,",
    "# can never capture one of hookwall's connections to the same receiver and port",
)


def _iptables(redirect: Redirect, family: Literal[4, 6]) -> list[str]:
    chain = f"-A {CHAIN}"
    to_hookwall = f"-j REDIRECT --to-ports {redirect.port}"
    lines = [
        "*raw",
        f":{ZONE_CHAIN} - [0:0]",
        *_ZONE_WHY,
        f"-A {ZONE_CHAIN} -p tcp -m owner --uid-owner {redirect.exempt_uid} "
        f"-j CT --zone-orig {ZONE}",
        f"-I OUTPUT 1 -p tcp -j {ZONE_CHAIN}",
        "COMMIT",
        "*nat",
        f":{CHAIN} - [0:0]",  # created, or (applied again, --noflush) emptied and refilled
        "# hookwall's own connections, and connections to hookwall: never redirected",
        f"{chain} -m owner --uid-owner {redirect.exempt_uid} -j RETURN",
        f"{chain} -d {_LOOPBACK[family]}/{32 if family == 4 else 128} -p tcp "
        f"--dport {redirect.port} -j RETURN",
    ]
    exclusions = [e for e in redirect.exclude if e.network.version == family]
    if exclusions or redirect.exclude_ports:
        lines.append("# --exclude-cidr, --exclude-port: reached directly")
    for exclusion in exclusions:
        port = "" if exclusion.port is None else f" -p tcp --dport {exclusion.port}"
        lines.append(f"{chain} -d {exclusion.network}{port} -j RETURN")
    lines += [f"{chain} -p tcp --dport {port} -j RETURN" for port in redirect.exclude_ports]
    lines.append("# to hookwall")
    lines += [f"{chain} -p tcp -m owner --uid-owner {uid} {to_hookwall}" for uid in redirect.uids]
    lines += [f"{chain} -p tcp -m cgroup --path {cg} {to_hookwall}" for cg in redirect.cgroups]
    if redirect.everyone:
        lines.append(f"{chain} -p tcp {to_hookwall}")
    lines += [
        "# first in nat OUTPUT: no other rule there rewrites a destination before this one",
        f"-I OUTPUT 1 -p tcp -j {CHAIN}",
        "COMMIT",
    ]
    return lines


def _nft(redirect: Redirect) -> list[str]:
    to_hookwall = f"meta l4proto tcp redirect to :{redirect.port}"
    rules = [
        "# hookwall's own connections, and connections to hookwall: never redirected",
        f"meta skuid {redirect.exempt_uid} return",
        f"ip daddr {_LOOPBACK[4]} tcp dport {redirect.port} return",
        f"ip6 daddr {_LOOPBACK[6]} tcp dport {redirect.port} return",
    ]
    if redirect.exclude or redirect.exclude_ports:
        rules.append("# --exclude-cidr, --exclude-port: reached directly")
    for exclusion in redirect.exclude:
        family = "ip" if exclusion.network.version == 4 else "ip6"
        port = "" if exclusion.port is None else f" tcp dport {exclusion.port}"
        rules.append(f"{family} daddr {exclusion.network}{port} return")
    rules += [f"tcp dport {port} return" for port in redirect.exclude_ports]
    rules.append("# to hookwall")
    rules += [f"meta skuid {uid} {to_hookwall}" for uid in redirect.uids]
    for cgroup in redirect.cgroups:
        level = cgroup.count("/") + 1
        rules.append(f'socket cgroupv2 level {level} "{cgroup}" {to_hookwall}')
    if redirect.everyone:
        rules.append(to_hookwall)
    return [
        # Declare, delete, define: one transaction that replaces an earlier hookwall table
        # (or creates the first) and touches no other table.
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        *(f"\t{line}" for line in _ZONE_WHY),
        "\tchain zone {",
        "\t\ttype filter hook output priority raw; policy accept;",
        f"\t\tmeta skuid {redirect.exempt_uid} meta l4proto tcp ct original zone set {ZONE}",
        "\t}",
        "\tchain output {",
        f"\t\ttype nat hook output priority {NFT_PRIORITY}; policy accept;",
        *(f"\t\t{rule}" for rule in rules),
        "\t}",
        "}",
    ]


def render(redirect: Redirect, fmt: Format) -> str:
    """The rule set of ``redirect`` in ``fmt``, with a header that says how to apply it."""
    if fmt == "nft":
        return "\n".join([*_header(redirect, fmt, (4, 6)), *_nft(redirect)]) + "\n"
    family: Literal[4, 6] = 4 if fmt == "iptables" else 6
    return "\n".join([*_header(redirect, fmt, (family,)), *_iptables(redirect, family)]) + "\n"


def removal(fmt: Format) -> str:
    """What removes every rule ``render`` added in ``fmt`` (whatever the arguments were)."""
    apply = f"{_command(['--remove', '--format', fmt])} | {_apply_with(fmt)}"
    if fmt == "nft":
        lines = [
            f"# hookwall redirect-rules --remove: delete table inet {TABLE} (nft -f input)",
            f"# apply: {apply}",
            "# (declared first, so this succeeds when the table is already gone)",
            f"table inet {TABLE}",
            f"delete table inet {TABLE}",
        ]
    else:
        lines = [
            f"# hookwall redirect-rules --remove: OUTPUT's jumps, the {CHAIN} chain (nat) and",
            f"# the {ZONE_CHAIN} chain (raw)",
            f"# apply: {apply}",
            "# It fails and changes nothing when the rules are not there, or when they were",
            "# applied twice (two jumps from OUTPUT); then delete the extra jump first:",
            f"#   {fmt} -t nat -D OUTPUT -p tcp -j {CHAIN}",
            f"#   {fmt} -t raw -D OUTPUT -p tcp -j {ZONE_CHAIN}",
            "*nat",
            f"-D OUTPUT -p tcp -j {CHAIN}",
            f"-F {CHAIN}",
            f"-X {CHAIN}",
            "COMMIT",
            "*raw",
            f"-D OUTPUT -p tcp -j {ZONE_CHAIN}",
            f"-F {ZONE_CHAIN}",
            f"-X {ZONE_CHAIN}",
            "COMMIT",
        ]
    return "\n".join(lines) + "\n"
