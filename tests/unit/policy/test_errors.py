"""Every policy error carries file:line:col and a message that says what to do.

The bad fixtures in tests/policies/bad mark each line that must produce an issue with a
"# error: TEXT" comment; a fixture passes when the issues are exactly the marked ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hookwall.config import yamltree as yamlload
from hookwall.policy import Location, PolicyError, PolicyIssue, load_policy
from tests.support.paths import POLICIES

BAD = POLICIES / "bad"
_MARKER = re.compile(r"#\s*error:\s*(.+?)\s*$")


def _markers(path: Path) -> list[tuple[str, int, str]]:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    expected = []
    for file in files:
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            match = _MARKER.search(line)
            if match:
                expected.append((str(file), number, match[1]))
    return expected


def _issues(path: Path | str) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return caught.value.issues


BAD_CASES = sorted(p.name for p in BAD.iterdir())


@pytest.mark.parametrize("name", BAD_CASES)
def test_bad_fixture_reports_exactly_the_marked_issues(name: str) -> None:
    path = BAD / name
    expected = _markers(path)
    assert expected, f"{name} has no '# error:' markers"
    issues = _issues(path)
    unmatched = list(issues)
    for file, line, text in expected:
        hit = next(
            (
                issue
                for issue in unmatched
                if issue.location is not None
                and (issue.location.file, issue.location.line) == (file, line)
                and text in issue.message
            ),
            None,
        )
        assert hit is not None, f"{file}:{line}: no issue containing {text!r} in\n" + "\n".join(
            map(str, issues)
        )
        unmatched.remove(hit)
    assert not unmatched, "unexpected issues:\n" + "\n".join(map(str, unmatched))


def test_all_bad_fixtures_are_collected_in_one_load(tmp_path: Path) -> None:
    """One load reports every problem in every file, not just the first."""
    for name in ("types.yaml", "hosts.yaml"):
        (tmp_path / name).write_text((BAD / name).read_text())
    issues = _issues(tmp_path)
    assert len(issues) == len(_markers(tmp_path)) > 25
    # Reported as an editor walks them: file by file (in load order), top to bottom.
    places = [(i.location.file, i.location.line, i.location.column) for i in issues if i.location]
    assert places == sorted(places)


def test_error_text_is_path_line_col_message_one_per_line() -> None:
    path = BAD / "types.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.issues)
    assert f"{path}:8:8: defaults.tls: expected one of intercept, passthrough; got 'intercep'" in (
        lines
    )
    assert all(re.match(rf"{re.escape(str(path))}:\d+:\d+: \S", line) for line in lines)


@pytest.mark.parametrize(
    ("name", "location", "message"),
    [
        (
            "types.yaml",
            (8, 8),
            "defaults.tls: expected one of intercept, passthrough; got 'intercep'",
        ),
        (
            "unknown-keys.yaml",
            (6, 3),
            "defaults.netwrok: unknown key 'netwrok'; did you mean 'network'?",
        ),
        (
            "duplicate-keys.yaml",
            (5, 3),
            "duplicate key 'tls' (first defined at line 3); remove one of them",
        ),
        ("syntax.yaml", (6, 10), "YAML syntax error: expected ',' or ']', but got ':'"),
        ("hosts.yaml", (6, 9), "destinations[2].hosts[0]: invalid host pattern 'foo*.com'"),
        ("no-version.yaml", (1, 1), "version: missing; add 'version: 1' as the first line"),
    ],
)
def test_issue_columns(name: str, location: tuple[int, int], message: str) -> None:
    path = BAD / name
    issue = next(i for i in _issues(path) if message in i.message)
    assert issue.location == Location(str(path), *location)


def test_duplicate_host_across_files_names_both_places() -> None:
    directory = BAD / "dir-duplicates"
    issues = {i.message.split(":")[0]: i for i in _issues(directory)}
    host = issues["destinations[0].hosts[0]"]
    assert host.location == Location(str(directory / "b.yml"), 7, 13)
    assert f"destination 'from-a' at {directory / 'a.yaml'}:7:13" in host.message
    assert f"already defined in {directory / 'a.yaml'}:4:1" in issues["defaults"].message
    assert issues["defaults"].location == Location(str(directory / "b.yml"), 4, 1)
    assert f"already defined in {directory / 'a.yaml'}:2:1" in issues["dns"].message


def test_duplicate_host_in_one_file_names_first_place() -> None:
    path = BAD / "duplicate-hosts.yaml"
    issue = next(i for i in _issues(path) if "'*.example.org'" in i.message)
    assert f"destination 'first' at {path}:3:34" in issue.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("version: 1\ndns: []\n", 2, "dns: expected a mapping; got a list"),
        ("version: 1\ndestinations: {}\n", 2, "destinations: expected a list; got a mapping"),
        ("version: 1\n1: x\n", 2, "keys must be strings; got 1"),
        ("version: 1\n---\nversion: 1\n", 2, "a policy file holds one YAML document"),
        ("version: 1\nx: !!python/object:os.system {}\n", 2, "unsupported YAML tag"),
        ("version: 1\ndefaults: {tls: !!binary 'x'}\n", 2, "invalid YAML value"),
        ("version: 1\ny: &a [*a]\n", 2, "recursive YAML alias"),
        ("version: 1\ndefaults: {tls: 'a\x01b'}\n", 2, "YAML cannot contain the character U+0001"),
        ("version: 1\n\ufeffx: 1\n", 2, "unknown key"),
        ("'just a string'\n", 1, "a policy must be a mapping with 'version: 1' at the top; got"),
        ("version: true\n", 1, "version: expected the number 1; got true"),
        ("version: 1\ndestinations: [{hosts: [*]}]\n", 2, "starting with '*' is read as an alias"),
        ("version: 1\ndestinations: [{hosts: [*a]}]\n", 2, "starting with '*' is read as an alias"),
    ],
)
def test_inline_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    issues = _issues(path)
    assert any(
        message in i.message and i.location is not None and i.location.line == line for i in issues
    ), "\n".join(map(str, issues))


def test_invalid_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\ndefaults: {tls: '\xff'}\n")
    [issue] = _issues(path)
    assert issue.location == Location(str(path), 2, 18)
    assert "not valid UTF-8" in issue.message


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    [issue] = _issues(path)
    assert issue.location is None
    assert str(issue) == (
        f"{path}: cannot open policy: No such file or directory; pass a policy file or a "
        "directory of *.yaml files"
    )


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n")

    def deny(self: Path, *args: object, **kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", deny)
    [issue] = _issues(path)
    assert str(issue) == f"{path}: cannot read policy file: Permission denied"


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("no policies here")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.yaml").write_text("version: 1\n")
    [issue] = _issues(tmp_path)
    assert issue.location is None
    assert issue.message.startswith(f"{tmp_path}: directory has no *.yaml or *.yml policy files")


def test_errors_in_several_files_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\ndefaults: {tls: x}\n")
    (tmp_path / "b.yaml").write_text("version: 1\ndestinations: [{hosts: []}]\n")
    (tmp_path / "c.yaml").write_text("version: 1\ndefaults: [\n")
    issues = _issues(tmp_path)
    assert [(Path(i.location.file).name, i.location.line) for i in issues if i.location] == [
        ("a.yaml", 2),
        ("b.yaml", 2),
        ("c.yaml", 3),
    ]


def test_policy_error_is_an_exception_with_issues() -> None:
    issue = PolicyIssue(Location("p.yaml", 3, 5), "boom")
    error = PolicyError([issue, PolicyIssue(None, "p.yaml: gone")])
    assert error.issues == [issue, PolicyIssue(None, "p.yaml: gone")]
    assert str(error) == "p.yaml:3:5: boom\np.yaml: gone"
    assert str(issue.location) == "p.yaml:3:5"


ALL_FIXTURES = sorted(
    [p for p in (BAD.parent / "good").glob("*.yaml")]
    + [BAD.parent / "dir-good"]
    + [BAD / name for name in BAD_CASES]
)


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_libyaml_and_pure_python_loaders_agree(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """libyaml is only an accelerator: positions and messages must not depend on it."""

    def outcome() -> object:
        try:
            return load_policy(path)
        except PolicyError as error:
            return error.issues

    fast = outcome()
    monkeypatch.setattr(yamlload, "FAST_LOADER", None)
    assert outcome() == fast
