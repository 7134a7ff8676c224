"""`hookwall check` and `explain` on allow rows that reopen special-purpose space.

Every policy goes through the command line as an operator runs it; the rule under test:
special-purpose space reopened by an allow row needs a name-scoped rule or 'unsafe: true',
judged on what the rows cover together, with embedded IPv4 judged as IPv4.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hookwall.cli.main import main

HOOKWALL = Path(sys.executable).with_name("hookwall")


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    code = main(["check", str(policy)])
    captured = capsys.readouterr()
    return code, captured.err.replace(str(policy), "p.yaml")


ACCEPTED = {
    "name-scoped exception": "destinations:\n  - hosts: [recv.example]\n"
    "    network: {allow: [10.1.0.0/16]}\n",
    "wildcard under a named domain": 'destinations:\n  - hosts: ["*.internal.example"]\n'
    "    network: {allow: [10.1.0.0/16]}\n",
    "wildcard under a registrable domain of a public suffix": "destinations:\n"
    '  - hosts: ["*.acme.co.uk", "*.svc.cluster.local"]\n    network: {allow: [10.1.0.0/16]}\n',
    "IP literal host": 'destinations:\n  - hosts: ["127.0.0.2"]\n'
    "    network: {allow: [127.0.0.2/32]}\n",
    "public defaults row": "defaults:\n  network: {allow: [8.8.8.0/24]}\n",
    "mapped spelling of a tie": 'defaults:\n  network: {allow: ["::ffff:127.0.0.0/104"]}\n',
    "mapped /97 is 0.0.0.0/1": 'defaults:\n  network: {allow: ["::ffff:0:0/97"]}\n',
    "shorter than every deny row": 'defaults:\n  network: {allow: ["0.0.0.0/0", "::/0"]}\n',
    "unsafe said": "unsafe: true\ndefaults:\n  network: {allow: [127.0.0.0/9, 127.128.0.0/9]}\n",
    "re-closed by a longer deny": "defaults:\n  network:\n    deny: [special-purpose, "
    "127.0.0.2/32]\n    allow: [127.0.0.2/32]\n",
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_check_accepts(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, f"version: 1\n{body}", capsys)
    assert (code, err) == (0, "")


FIX = "narrow the row to the addresses you need outside them, move it to a destination"
REFUSED = {
    "two halves cancel a deny row": (
        "defaults:\n  network: {allow: [127.0.0.0/9, 127.128.0.0/9]}\n",
        [
            "p.yaml:3:21: defaults.network.allow[0]: 127.0.0.0/9 reopens 127.0.0.0/9 of "
            "127.0.0.0/8 loopback (RFC 1122); together with the other allow rows of the "
            "defaults it reopens 127.0.0.0/8 loopback (RFC 1122).",
            "p.yaml:3:34: defaults.network.allow[1]: 127.128.0.0/9 reopens 127.128.0.0/9 of "
            "127.0.0.0/8 loopback (RFC 1122); together",
        ],
    ),
    "mapped spelling judged as IPv4": (
        'defaults:\n  network: {allow: ["::ffff:127.0.0.0/105"]}\n',
        [
            "p.yaml:3:21: defaults.network.allow[0]: 127.0.0.0/9 (the IPv4 range this row "
            "embeds) reopens 127.0.0.0/9 of 127.0.0.0/8 loopback (RFC 1122). "
        ],
    ),
    "6to4 spelling judged as IPv4": (
        'defaults:\n  network: {allow: ["2002:a9fe::/33"]}\n',
        ["p.yaml:3:21: defaults.network.allow[0]: 169.254.0.0/17 (the IPv4 range this row"],
    ),
    "a catch-all rule is not name-scoped": (
        'destinations:\n  - hosts: ["*"]\n    network: {allow: [169.254.169.254/32]}\n',
        [
            "p.yaml:4:23: destinations[0].network.allow[0]: 169.254.169.254/32 reopens "
            "169.254.169.254/32 of 169.254.0.0/16 link-local (RFC 3927). "
        ],
    ),
    "a wildcard under a top-level domain is not name-scoped": (
        'destinations:\n  - hosts: [a.example, "*.com"]\n    network: {allow: [10.1.0.0/16]}\n',
        ["p.yaml:4:23: destinations[0].network.allow[0]: 10.1.0.0/16 reopens 10.1.0.0/16 of "],
    ),
    "a wildcard under a public suffix is not name-scoped": (
        'destinations:\n  - hosts: ["*.co.uk"]\n    network: {allow: [10.1.0.0/16]}\n',
        ["p.yaml:4:23: destinations[0].network.allow[0]: 10.1.0.0/16 reopens 10.1.0.0/16 of "],
    ),
    "nor under a private-section suffix": (
        'destinations:\n  - hosts: ["*.github.io"]\n    network: {allow: [10.1.0.0/16]}\n',
        ["p.yaml:4:23: destinations[0].network.allow[0]: 10.1.0.0/16 reopens 10.1.0.0/16 of "],
    ),
    "nor under a TLD missing from the list": (
        'destinations:\n  - hosts: ["*.internal"]\n    network: {allow: [10.1.0.0/16]}\n',
        ["p.yaml:4:23: destinations[0].network.allow[0]: 10.1.0.0/16 reopens 10.1.0.0/16 of "],
    ),
    "rows across the defaults and a rule": (
        "defaults:\n  network: {allow: [10.128.0.0/9]}\n"
        'destinations:\n  - hosts: ["*"]\n    network: {allow: [10.0.0.0/9]}\n',
        [
            "p.yaml:3:21: defaults.network.allow[0]: 10.128.0.0/9 reopens 10.128.0.0/9 of "
            "10.0.0.0/8 private-use (RFC 1918). ",
            "p.yaml:6:23: destinations[0].network.allow[0]: 10.0.0.0/9 reopens 10.0.0.0/9 of "
            "10.0.0.0/8 private-use (RFC 1918); together with the other allow rows of "
            "destination '*' it reopens 10.0.0.0/8 private-use (RFC 1918).",
        ],
    ),
    "a defaults row stays unscoped under a named rule": (
        "defaults:\n  network: {allow: [fd00::/9]}\n"
        "destinations:\n  - hosts: [recv.example]\n    network: {allow: [fd80::/9]}\n",
        ["p.yaml:3:21: defaults.network.allow[0]: fd00::/9 reopens fd00::/9 of fc00::/7"],
    ),
    "6to4 row longer than its IPv4": (
        'defaults:\n  network: {allow: ["2002:a01:203:1::/64"]}\n',
        [
            "p.yaml:3:21: defaults.network.allow[0]: 2002:a01:203:1::/64 is inside 2002::/16 "
            "6to4 (RFC 3056), whose addresses hookwall judges by the IPv4 address in bits "
            "16-48 (10.1.2.3); a prefix longer than /48 cannot be judged that way: write "
            "10.1.2.3/32 instead"
        ],
    ),
}


@pytest.mark.parametrize(("body", "errors"), REFUSED.values(), ids=REFUSED.keys())
def test_check_refuses(
    tmp_path: Path, body: str, errors: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = check(tmp_path, f"version: 1\n{body}", capsys)
    lines = err.splitlines()[1:]
    assert code == 1 and len(lines) == len(errors), err
    for line, expected in zip(lines, errors, strict=True):
        assert line.startswith(expected)
        if "reopens" in expected:
            assert FIX in line and "set 'unsafe: true' at the top of p.yaml" in line


def test_many_small_rows_are_seen_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ", ".join(f"192.168.{i}.0/24" for i in range(256))
    code, err = check(tmp_path, f"version: 1\ndefaults:\n  network: {{allow: [{rows}]}}\n", capsys)
    lines = err.splitlines()[1:]
    assert code == 1 and len(lines) == 256
    assert "it reopens 192.168.0.0/16 private-use (RFC 1918)." in lines[-1]


def test_in_a_directory_unsafe_belongs_to_the_file_with_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "10-base.yaml").write_text(
        "version: 1\nunsafe: true\ndefaults:\n  network: {allow: [127.0.0.2/32]}\n"
    )
    (tmp_path / "20-more.yaml").write_text(
        'version: 1\ndestinations:\n  - hosts: ["*"]\n    network: {allow: [10.0.0.0/16]}\n'
    )
    assert main(["check", str(tmp_path)]) == 1
    [line] = capsys.readouterr().err.splitlines()[1:]
    assert line.startswith(f"{tmp_path / '20-more.yaml'}:4:23: destinations[0].network.allow[0]")
    assert f"'unsafe: true' at the top of {tmp_path / '20-more.yaml'}" in line


def test_start_up_refuses_like_check(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text('version: 1\ndefaults:\n  network: {allow: ["::ffff:10.0.0.0/105"]}\n')
    result = subprocess.run(
        [str(HOOKWALL), "run", "--policy", str(policy), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{policy}:3:21: defaults.network.allow[0]: 10.0.0.0/9" in result.stderr


@pytest.mark.parametrize(
    ("body", "url", "sentence"),
    [
        (
            "unsafe: true\ndefaults:\n  network: {allow: [127.0.0.2/32]}\n",
            "http://127.0.0.2/",
            "allow  127.0.0.2 is in policy allow 127.0.0.2/32 (p.yaml:4:21) [unsafe: true], "
            "which reopens 127.0.0.0/8 loopback (RFC 1122): allowed",
        ),
        (
            "unsafe: true\ndefaults:\n  network: {allow: [127.0.0.2/32]}\n",
            "http://[::ffff:127.0.0.2]/",
            "allow  ::ffff:127.0.0.2 embeds 127.0.0.2 (IPv4-mapped, RFC 4291); 127.0.0.2 is in "
            "policy allow 127.0.0.2/32 (p.yaml:4:21) [unsafe: true], which reopens "
            "127.0.0.0/8 loopback (RFC 1122): allowed",
        ),
        (
            'destinations:\n  - hosts: ["127.0.0.2"]\n    network: {allow: ["::ffff:127.0.0.2"]}\n',
            "http://127.0.0.2/",
            "allow  127.0.0.2 is in policy allow ::ffff:127.0.0.2 (p.yaml:4:23) = 127.0.0.2/32, "
            "IPv4-mapped, RFC 4291 [name-scoped exception], which reopens 127.0.0.0/8 "
            "loopback (RFC 1122): allowed",
        ),
        (
            'defaults:\n  network: {allow: ["::ffff:127.0.0.0/104"]}\n',
            "http://[::ffff:127.0.0.1]/",
            "DENY   ::ffff:127.0.0.1 embeds 127.0.0.1 (IPv4-mapped, RFC 4291); 127.0.0.1 is in "
            "127.0.0.0/8 loopback (RFC 1122): denied",
        ),
    ],
)
def test_explain_says_which_row_reopens_and_why_it_may(
    tmp_path: Path, body: str, url: str, sentence: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\n{body}")
    main(["explain", url, "--policy", str(policy), "--dns-server", "127.0.0.1:9"])
    out = capsys.readouterr().out.replace(str(policy), "p.yaml")
    assert re.search(rf"^  {re.escape(sentence)}$", out, re.M), out


def test_check_names_every_exception_it_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nunsafe: true\ndefaults:\n  network: {allow: [127.0.0.2/32, 8.8.8.0/24]}\n"
        "destinations:\n  - hosts: [recv.example]\n    network: {allow: [10.1.0.0/16]}\n"
    )
    assert main(["check", str(policy)]) == 0
    out = capsys.readouterr().out.replace(str(policy), "p.yaml").splitlines()
    start = out.index("exceptions into special-purpose space:")
    assert out[start + 1 : -1] == [
        "  policy allow 127.0.0.2/32 (p.yaml:4:21) [unsafe: true] reopens 127.0.0.2/32 of "
        "127.0.0.0/8 loopback (RFC 1122) for every destination",
        "  policy allow 10.1.0.0/16 (p.yaml:7:23) [name-scoped exception] reopens 10.1.0.0/16 "
        "of 10.0.0.0/8 private-use (RFC 1918) for recv.example",
    ]
    assert out[-1] == "policy OK"
