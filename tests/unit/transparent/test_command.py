"""``hookwall redirect-rules`` (cli/redirect_rules.py): the arguments reach the generator as
given, what it refuses exits 2 in hookwall's words with nothing on stdout, and --help
teaches how to apply, check and remove."""

from __future__ import annotations

import pytest

from hookwall.cli.main import main
from hookwall.transparent.rules import Redirect, parse_exclusion, removal, render


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["redirect-rules", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_the_generators_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        *("--uid", "1000", "--uid", "1001", "--cgroup", "system.slice/b.service"),
        *("--exempt-uid", "1337", "--port", "15001", "--format", "nft"),
        *("--exclude-cidr", "10.0.0.0/8", "--exclude-port", "22"),
    )
    expected = Redirect(
        port=15001,
        exempt_uid=1337,
        uids=(1000, 1001),
        cgroups=("system.slice/b.service",),
        exclude=(parse_exclusion("10.0.0.0/8"),),
        exclude_ports=(22,),
    )
    assert (code, out, err) == (0, render(expected, "nft"), "")


def test_the_default_port_is_8081(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--exempt-uid", "1337", "--format", "iptables")
    assert code == 0 and out == render(Redirect(port=8081, exempt_uid=1337), "iptables")


@pytest.mark.parametrize("fmt", ["iptables", "ip6tables", "nft"])
def test_remove_needs_only_the_format(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    code, out, _ = run(capsys, "--remove", "--format", fmt)
    assert code == 0 and out == removal(fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--format", "nft"], "--exempt-uid is required"),
        (["--exempt-uid", "1337"], "--format is required"),
        (["--exempt-uid", "1337", "--format", "pf"], "--format 'pf' is not one of them"),
        (
            ["--exempt-uid", "1337", "--uid", "1337", "--format", "nft"],
            "--uid 1337 is --exempt-uid",
        ),
        (["--exempt-uid", "root", "--format", "nft"], "id -u root"),
        (["--exempt-uid", "1", "--port", "0", "--format", "nft"], "--port '0'"),
        (["--exempt-uid", "1", "--exclude-cidr", "10.0.0.1/8", "--format", "nft"], "host bits"),
        (["--exempt-uid", "1", "--cgroup", "../x", "--format", "iptables"], "--cgroup '../x'"),
    ],
)
def test_refusals_exit_2_with_nothing_printed(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("hookwall redirect-rules: ") and message in err, err


def test_help_teaches_what_how_check_and_remove(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["redirect-rules", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for taught in (
        "every user's but hookwall's own",  # what it redirects
        "loopback included",
        "Never redirected: hookwall's own connections (--exempt-uid",
        "| iptables-restore --noflush",  # how to apply
        "| ip6tables-restore --noflush",
        "| nft -f -",
        "iptables -t nat -S HOOKWALL_OUTPUT",  # how to check
        "nft list table inet hookwall",
        "hookwall redirect-rules --remove --format iptables",  # how to remove
    ):
        assert taught in text, taught


def test_listed_in_hookwalls_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "redirect-rules" in capsys.readouterr().out
