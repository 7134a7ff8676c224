"""transparent/rules.py: the rule sets of ``hookwall redirect-rules``, as text.

Golden outputs for each format and mode (the sidecar pattern, named uids and cgroups,
exclusions), the removal texts, and every argument it refuses. tests/integration/
test_redirect_rules.py applies the same texts in a network namespace of their own.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any

import pytest

from hookwall.transparent.rules import (
    CHAIN,
    FORMATS,
    MAX_UID,
    Exclusion,
    Format,
    Redirect,
    RuleError,
    parse_cgroup,
    parse_exclusion,
    parse_format,
    parse_port,
    parse_uid,
    redirect_from_args,
    removal,
    render,
)

SIDECAR = Redirect(port=8081, exempt_uid=1337)
EXCLUDING = redirect_from_args(
    port="8081",
    exempt_uid="1337",
    exclude_cidrs=["10.0.0.0/8", "127.0.0.1/32:5432", "fd00::/8:443"],
    exclude_ports=["6379"],
)
NAMED = redirect_from_args(
    port="15001",
    exempt_uid="1337",
    uids=["1000", "1001"],
    cgroups=["/system.slice/billing.service"],
)


# The raw table's part of every iptables rule set exempting uid 1337 (comments dropped).
ZONE_1337 = [
    "*raw",
    ":HOOKWALL_ZONE - [0:0]",
    "-A HOOKWALL_ZONE -p tcp -m owner --uid-owner 1337 -j CT --zone-orig 18519",
    "-I OUTPUT 1 -p tcp -j HOOKWALL_ZONE",
    "COMMIT",
]


def rules(text: str) -> list[str]:
    """The lines a tool acts on, without their indentation (comments dropped)."""
    stripped = (line.strip() for line in text.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


# -- golden outputs ------------------------------------------------------------------------


def test_sidecar_iptables_golden() -> None:
    assert render(SIDECAR, "iptables") == (
        "# hookwall redirect-rules (IPv4, iptables-restore input)\n"
        "# Redirects the outbound TCP of every user but uid 1337 (hookwall's own)\n"
        "# to hookwall run --mode transparent on 127.0.0.1:8081, loopback destinations included.\n"
        "# Never redirected: hookwall's own connections, connections to hookwall's port.\n"
        "# Excluded (--exclude-cidr, --exclude-port): none.\n"
        "# apply:  hookwall redirect-rules --exempt-uid 1337 --port 8081 --format iptables"
        " | iptables-restore --noflush\n"
        "# check:  iptables -t nat -S HOOKWALL_OUTPUT\n"
        "# remove: hookwall redirect-rules --remove --format iptables"
        " | iptables-restore --noflush\n"
        "# IPv6 needs its own rules: the same arguments with --format ip6tables.\n"
        "*raw\n"
        ":HOOKWALL_ZONE - [0:0]\n"
        "# hookwall's own connections in a conntrack zone of their own (original direction):\n"
        "# a sender's redirected connection just reset, still tracked with its NAT binding,\n"
        "# can never capture one of hookwall's connections to the same receiver and port\n"
        "-A HOOKWALL_ZONE -p tcp -m owner --uid-owner 1337 -j CT --zone-orig 18519\n"
        "-I OUTPUT 1 -p tcp -j HOOKWALL_ZONE\n"
        "COMMIT\n"
        "*nat\n"
        ":HOOKWALL_OUTPUT - [0:0]\n"
        "# hookwall's own connections, and connections to hookwall: never redirected\n"
        "-A HOOKWALL_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
        "-A HOOKWALL_OUTPUT -d 127.0.0.1/32 -p tcp --dport 8081 -j RETURN\n"
        "# to hookwall\n"
        "-A HOOKWALL_OUTPUT -p tcp -j REDIRECT --to-ports 8081\n"
        "# first in nat OUTPUT: no other rule there rewrites a destination before this one\n"
        "-I OUTPUT 1 -p tcp -j HOOKWALL_OUTPUT\n"
        "COMMIT\n"
    )


def test_sidecar_ip6tables_golden() -> None:
    assert rules(render(SIDECAR, "ip6tables")) == [
        *ZONE_1337,
        "*nat",
        ":HOOKWALL_OUTPUT - [0:0]",
        "-A HOOKWALL_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A HOOKWALL_OUTPUT -d ::1/128 -p tcp --dport 8081 -j RETURN",
        "-A HOOKWALL_OUTPUT -p tcp -j REDIRECT --to-ports 8081",
        "-I OUTPUT 1 -p tcp -j HOOKWALL_OUTPUT",
        "COMMIT",
    ]
    assert "on [::1]:8081" in render(SIDECAR, "ip6tables")


def test_sidecar_nft_golden() -> None:
    assert render(SIDECAR, "nft") == (
        "# hookwall redirect-rules (IPv4 and IPv6, nft -f input)\n"
        "# Redirects the outbound TCP of every user but uid 1337 (hookwall's own)\n"
        "# to hookwall run --mode transparent on 127.0.0.1:8081 and [::1]:8081, loopback "
        "destinations included.\n"
        "# Never redirected: hookwall's own connections, connections to hookwall's port.\n"
        "# Excluded (--exclude-cidr, --exclude-port): none.\n"
        "# apply:  hookwall redirect-rules --exempt-uid 1337 --port 8081 --format nft"
        " | nft -f -\n"
        "# check:  nft list table inet hookwall\n"
        "# remove: hookwall redirect-rules --remove --format nft | nft -f -\n"
        "table inet hookwall\n"
        "delete table inet hookwall\n"
        "table inet hookwall {\n"
        "\t# hookwall's own connections in a conntrack zone of their own (original direction):\n"
        "\t# a sender's redirected connection just reset, still tracked with its NAT binding,\n"
        "\t# can never capture one of hookwall's connections to the same receiver and port\n"
        "\tchain zone {\n"
        "\t\ttype filter hook output priority raw; policy accept;\n"
        "\t\tmeta skuid 1337 meta l4proto tcp ct original zone set 18519\n"
        "\t}\n"
        "\tchain output {\n"
        "\t\ttype nat hook output priority -110; policy accept;\n"
        "\t\t# hookwall's own connections, and connections to hookwall: never redirected\n"
        "\t\tmeta skuid 1337 return\n"
        "\t\tip daddr 127.0.0.1 tcp dport 8081 return\n"
        "\t\tip6 daddr ::1 tcp dport 8081 return\n"
        "\t\t# to hookwall\n"
        "\t\tmeta l4proto tcp redirect to :8081\n"
        "\t}\n"
        "}\n"
    )


def test_exclusions_iptables_golden() -> None:
    """Each family gets its own CIDRs; --exclude-port goes to both."""
    assert rules(render(EXCLUDING, "iptables")) == [
        *ZONE_1337,
        "*nat",
        ":HOOKWALL_OUTPUT - [0:0]",
        "-A HOOKWALL_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A HOOKWALL_OUTPUT -d 127.0.0.1/32 -p tcp --dport 8081 -j RETURN",
        "-A HOOKWALL_OUTPUT -d 10.0.0.0/8 -j RETURN",
        "-A HOOKWALL_OUTPUT -d 127.0.0.1/32 -p tcp --dport 5432 -j RETURN",
        "-A HOOKWALL_OUTPUT -p tcp --dport 6379 -j RETURN",
        "-A HOOKWALL_OUTPUT -p tcp -j REDIRECT --to-ports 8081",
        "-I OUTPUT 1 -p tcp -j HOOKWALL_OUTPUT",
        "COMMIT",
    ]
    assert rules(render(EXCLUDING, "ip6tables")) == [
        *ZONE_1337,
        "*nat",
        ":HOOKWALL_OUTPUT - [0:0]",
        "-A HOOKWALL_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A HOOKWALL_OUTPUT -d ::1/128 -p tcp --dport 8081 -j RETURN",
        "-A HOOKWALL_OUTPUT -d fd00::/8 -p tcp --dport 443 -j RETURN",
        "-A HOOKWALL_OUTPUT -p tcp --dport 6379 -j RETURN",
        "-A HOOKWALL_OUTPUT -p tcp -j REDIRECT --to-ports 8081",
        "-I OUTPUT 1 -p tcp -j HOOKWALL_OUTPUT",
        "COMMIT",
    ]
    header = render(EXCLUDING, "ip6tables").splitlines()[4]
    assert (
        header
        == "# Excluded (--exclude-cidr, --exclude-port): fd00::/8:443, port 6379 of every address."
    )


def test_exclusions_nft_golden() -> None:
    assert rules(render(EXCLUDING, "nft"))[12:-3] == [
        "ip daddr 10.0.0.0/8 return",
        "ip daddr 127.0.0.1/32 tcp dport 5432 return",
        "ip6 daddr fd00::/8 tcp dport 443 return",
        "tcp dport 6379 return",
    ]


def test_named_uids_and_cgroups_golden() -> None:
    """Only those are redirected: no rule for every user; the cgroup's nft level is its depth."""
    assert rules(render(NAMED, "iptables")) == [
        *ZONE_1337,
        "*nat",
        ":HOOKWALL_OUTPUT - [0:0]",
        "-A HOOKWALL_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A HOOKWALL_OUTPUT -d 127.0.0.1/32 -p tcp --dport 15001 -j RETURN",
        "-A HOOKWALL_OUTPUT -p tcp -m owner --uid-owner 1000 -j REDIRECT --to-ports 15001",
        "-A HOOKWALL_OUTPUT -p tcp -m owner --uid-owner 1001 -j REDIRECT --to-ports 15001",
        "-A HOOKWALL_OUTPUT -p tcp -m cgroup --path system.slice/billing.service "
        "-j REDIRECT --to-ports 15001",
        "-I OUTPUT 1 -p tcp -j HOOKWALL_OUTPUT",
        "COMMIT",
    ]
    assert rules(render(NAMED, "nft")) == [
        "table inet hookwall",
        "delete table inet hookwall",
        "table inet hookwall {",
        "chain zone {",
        "type filter hook output priority raw; policy accept;",
        "meta skuid 1337 meta l4proto tcp ct original zone set 18519",
        "}",
        "chain output {",
        "type nat hook output priority -110; policy accept;",
        "meta skuid 1337 return",
        "ip daddr 127.0.0.1 tcp dport 15001 return",
        "ip6 daddr ::1 tcp dport 15001 return",
        "meta skuid 1000 meta l4proto tcp redirect to :15001",
        "meta skuid 1001 meta l4proto tcp redirect to :15001",
        'socket cgroupv2 level 2 "system.slice/billing.service" meta l4proto tcp '
        "redirect to :15001",
        "}",
        "}",
    ]
    header = render(NAMED, "nft").splitlines()[1]
    assert header == (
        "# Redirects the outbound TCP of uid 1000, uid 1001, cgroup system.slice/billing.service "
        "(never uid 1337, hookwall's own)"
    )


def test_removal_golden() -> None:
    assert rules(removal("iptables")) == [
        "*nat",
        "-D OUTPUT -p tcp -j HOOKWALL_OUTPUT",
        "-F HOOKWALL_OUTPUT",
        "-X HOOKWALL_OUTPUT",
        "COMMIT",
        "*raw",
        "-D OUTPUT -p tcp -j HOOKWALL_ZONE",
        "-F HOOKWALL_ZONE",
        "-X HOOKWALL_ZONE",
        "COMMIT",
    ]
    assert rules(removal("ip6tables")) == rules(removal("iptables"))
    assert "ip6tables-restore --noflush" in removal("ip6tables")
    # Declared first: deleting a table that is gone already still succeeds.
    assert rules(removal("nft")) == ["table inet hookwall", "delete table inet hookwall"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("redirect", [SIDECAR, EXCLUDING, NAMED], ids=["sidecar", "excl", "named"])
def test_the_header_commands_give_this_text(fmt: Format, redirect: Redirect) -> None:
    """The `apply:` line says the arguments that print exactly this text, and `remove:` its
    removal: an operator can copy either from the output."""
    text = render(redirect, fmt)
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in text.splitlines()[5:8]}
    apply_argv = shlex.split(lines["# apply"].split("|")[0])
    assert apply_argv[:2] == ["hookwall", "redirect-rules"]
    assert render(_from_argv(apply_argv[2:]), fmt) == text
    remove_argv = shlex.split(lines["# remove"].split("|")[0])
    assert remove_argv[2:] == ["--remove", "--format", fmt]
    assert lines["# apply"].split("|")[1] == lines["# remove"].split("|")[1]


def _from_argv(argv: list[str]) -> Redirect:
    """A tiny reading of redirect-rules' flags (the CLI's own is tested in test_cli)."""
    lists: dict[str, list[str]] = {}
    single: dict[str, str] = {}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        if flag in ("--uid", "--cgroup", "--exclude-cidr", "--exclude-port"):
            lists.setdefault(flag, []).append(value)
        elif flag != "--format":
            single[flag] = value
    return redirect_from_args(
        port=single["--port"],
        exempt_uid=single["--exempt-uid"],
        uids=lists.get("--uid", []),
        cgroups=lists.get("--cgroup", []),
        exclude_cidrs=lists.get("--exclude-cidr", []),
        exclude_ports=lists.get("--exclude-port", []),
    )


# -- what every rule set keeps -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("redirect", [SIDECAR, EXCLUDING, NAMED], ids=["sidecar", "excl", "named"])
def test_hookwalls_own_traffic_returns_before_any_redirect(fmt: Format, redirect: Redirect) -> None:
    lines = rules(render(redirect, fmt))
    own = (
        "meta skuid 1337 return"
        if fmt == "nft"
        else f"-A {CHAIN} -m owner --uid-owner 1337 -j RETURN"
    )
    first_redirect = next(
        i for i, line in enumerate(lines) if "REDIRECT" in line or "redirect" in line
    )
    assert lines.index(own) < first_redirect
    # Nothing but RETURNs and REDIRECTs to hookwall's port: no other target, no other port.
    for line in lines:
        if "REDIRECT" in line:
            assert line.endswith(f"-j REDIRECT --to-ports {redirect.port}")
        if "redirect" in line:
            assert line.endswith(f"redirect to :{redirect.port}")
        assert "ACCEPT" not in line.replace("policy accept", "") and "DROP" not in line


def test_loopback_is_not_excluded_by_default() -> None:
    """127.0.0.1 and ::1 are redirected like any address; only hookwall's own port is left."""
    for fmt in FORMATS:
        loopback = [
            line for line in rules(render(SIDECAR, fmt)) if "127.0.0.1" in line or "::1" in line
        ]
        assert all("8081" in line for line in loopback), loopback


def test_repeated_arguments_are_kept_once() -> None:
    redirect = redirect_from_args(
        port="8081",
        exempt_uid="0",
        uids=["5", "5", "6"],
        cgroups=["a/b", "/a/b"],
        exclude_cidrs=["10.0.0.0/8", "10.0.0.0/8"],
        exclude_ports=["22", "22"],
    )
    assert redirect.uids == (5, 6)
    assert redirect.cgroups == ("a/b",)
    assert len(redirect.exclude) == 1 and redirect.exclude_ports == (22,)


# -- arguments refused ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"exempt_uid": None}, "--exempt-uid is required: the uid hookwall runs as"),
        ({"uids": ["1337"]}, "--uid 1337 is --exempt-uid, the uid hookwall runs as"),
        (
            {"exempt_uid": "hookwall"},
            "a uid is a number from 0 to 4294967294 (for the user hookwall: id -u hookwall)",
        ),
        ({"uids": ["-1"]}, "--uid '-1': a uid is a number from 0 to 4294967294"),
        ({"uids": ["4294967295"]}, "--uid '4294967295': a uid is a number"),
        ({"uids": ["1e3"]}, "--uid '1e3': a uid is a number"),
        ({"uids": [""]}, "--uid '': a uid is a number"),
        ({"port": "0"}, "--port '0': a port is a number from 1 to 65535"),
        ({"port": "65536"}, "--port '65536': a port is a number from 1 to 65535"),
        ({"port": "http"}, "--port 'http': a port is a number"),
        ({"exclude_ports": ["0"]}, "--exclude-port '0': a port is a number"),
        ({"exclude_ports": ["8081"]}, "--exclude-port 8081 is hookwall's own --port"),
        ({"exclude_cidrs": ["10.0.0.1/8"]}, "it has host bits set; the network is 10.0.0.0/8"),
        ({"exclude_cidrs": ["10.0.0.5"]}, "the /LEN is missing; one address is ADDRESS/32"),
        ({"exclude_cidrs": ["::1:5432"]}, "the /LEN is missing"),
        ({"exclude_cidrs": ["10.0.0.0/33"]}, "--exclude-cidr '10.0.0.0/33': not a CIDR"),
        ({"exclude_cidrs": ["db.internal/32"]}, "not a CIDR"),
        ({"exclude_cidrs": ["10.0.0.0/8:0"]}, "'0' is not a port (1 to 65535)"),
        ({"exclude_cidrs": ["10.0.0.0/8:99999"]}, "'99999' is not a port"),
        ({"exclude_cidrs": ["0.0.0.0/0"]}, "that is every IPv4 address, so nothing of IPv4"),
        ({"exclude_cidrs": ["::/0:443"]}, "that is every IPv6 address"),
        (
            {"cgroups": ["/sys/fs/cgroup/system.slice/x.service"]},
            "give the path below the cgroup v2 root",
        ),
        ({"cgroups": ["a/../b"]}, "expected a cgroup v2 path"),
        ({"cgroups": ["/"]}, "not the root cgroup"),
        ({"cgroups": ["a//b"]}, "expected a cgroup v2 path"),
        ({"cgroups": ['a"; drop']}, "expected a cgroup v2 path"),
        ({"cgroups": ["a\nb"]}, "expected a cgroup v2 path"),
        ({"cgroups": ["system.slice/x\\x2dy.service"]}, "expected a cgroup v2 path"),
    ],
)
def test_arguments_refused_in_hookwalls_words(args: dict[str, Any], message: str) -> None:
    full: dict[str, Any] = {"port": "8081", "exempt_uid": "1337", **args}
    with pytest.raises(RuleError) as raised:
        redirect_from_args(**full)
    assert message in str(raised.value)


def test_a_redirect_built_directly_is_checked_too() -> None:
    """The checks sit in the value, not only in the parsing of the command line."""
    with pytest.raises(RuleError, match="is --exempt-uid"):
        Redirect(port=8081, exempt_uid=7, uids=(1, 7))
    with pytest.raises(RuleError, match="a uid is a number"):
        Redirect(port=8081, exempt_uid=MAX_UID + 1)
    with pytest.raises(RuleError, match="a port is a number"):
        Redirect(port=0, exempt_uid=1)
    with pytest.raises(RuleError, match="every IPv4 address"):
        Exclusion(ipaddress.ip_network("0.0.0.0/0"))


def test_parsers_accept_what_they_document() -> None:
    assert parse_uid("0") == 0 and parse_uid(" 4294967294 ") == MAX_UID
    assert parse_port("1") == 1 and parse_port("65535") == 65535
    assert parse_exclusion("fd00::/8:5432") == Exclusion(ipaddress.ip_network("fd00::/8"), 5432)
    assert parse_exclusion("10.1.2.3/32") == Exclusion(ipaddress.ip_network("10.1.2.3/32"))
    assert str(parse_exclusion("::1/128:5432")) == "::1/128:5432"
    assert parse_cgroup("/kubepods.slice/pod@1:2+3/") == "kubepods.slice/pod@1:2+3"
    assert [parse_format(name) for name in FORMATS] == list(FORMATS)
    for bad in (None, "nftables", "IPTABLES"):
        with pytest.raises(RuleError, match="--format"):
            parse_format(bad)
