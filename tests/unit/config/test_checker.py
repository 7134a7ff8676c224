"""The generic checker on its own: every section parser's questions, answered or located.

The policy tests prove the messages in context; these pin what the checker itself promises,
without any section: a value or None, and an issue at the node's file:line:col.
"""

from __future__ import annotations

import pytest

from hookwall.config.checker import Checker, is_whole, subpath
from hookwall.config.errors import PolicyIssue
from hookwall.config.overrides import apply
from hookwall.config.shapes import Whole
from hookwall.config.yamlnodes import YMap, YNode
from hookwall.config.yamltree import load_yaml_text
from hookwall.limits.settings import LimitConfig


def tree(text: str) -> tuple[Checker, YMap]:
    issues: list[PolicyIssue] = []
    root = load_yaml_text(text, "/etc/hookwall/p.yaml", issues)
    assert isinstance(root, YMap) and not issues
    return Checker("/etc/hookwall/p.yaml", issues), root


def value(root: YMap, key: str) -> YNode:
    return root.entries[key].value


def messages(checker: Checker) -> list[str]:
    return [str(issue) for issue in checker.issues]


def test_the_base_dir_is_the_files_directory() -> None:
    checker, _ = tree("a: 1\n")
    assert str(checker.base_dir) == "/etc/hookwall"


def test_unknown_keys_get_the_closest_known_key_or_the_list() -> None:
    checker, root = tree("timeout: 1\nzzz: 2\nports: 3\n")
    checker.keys(root, "dns", ("timeouts", "ports"))
    assert messages(checker) == [
        "/etc/hookwall/p.yaml:1:1: dns.timeout: unknown key 'timeout'; did you mean 'timeouts'?",
        "/etc/hookwall/p.yaml:2:1: dns.zzz: unknown key 'zzz'; known keys: timeouts, ports",
    ]


def test_a_misplaced_key_gets_its_pointed_hint_instead() -> None:
    checker, root = tree("hosts: [a]\n")
    checker.keys(root, "", ("tls",), {"hosts": "hosts belongs in an entry of destinations"})
    assert messages(checker) == [
        "/etc/hookwall/p.yaml:1:1: hosts: hosts belongs in an entry of destinations"
    ]


def test_null_is_an_empty_section_not_an_error() -> None:
    checker, root = tree("empty:\nlist: [1]\n")
    assert checker.mapping(value(root, "empty"), "empty") is None
    assert checker.mapping(value(root, "list"), "list") is None
    assert messages(checker) == ["/etc/hookwall/p.yaml:2:7: list: expected a mapping; got a list"]


@pytest.mark.parametrize(
    ("text", "expected", "message"),
    [
        ("250ms", 0.25, None),
        ("0s", 0.0, "x: must be longer than 0s"),
        ("5parsecs", 0.0, "x: invalid duration '5parsecs': unknown unit 'parsecs'; use one of"),
        ("[1]", 0.0, "x: expected a duration like '2s' or '500ms'; got a list"),
    ],
)
def test_durations(text: str, expected: float, message: str | None) -> None:
    checker, root = tree(f"x: {text}\n")
    assert checker.duration(value(root, "x"), "x", positive=True) == expected
    found = messages(checker)
    if message is None:
        assert found == []
    else:
        [one] = found
        assert one.startswith(f"/etc/hookwall/p.yaml:1:4: {message}")


@pytest.mark.parametrize(
    ("text", "expected", "message"),
    [
        ("64KiB", 65536, None),
        ("0", 0, None),  # the bound is the caller's, in its own words
        ("true", None, "x: expected a size like '1KiB'; got true"),
        ("1.5B", None, "x: invalid size '1.5B': must be a whole number of bytes"),
    ],
)
def test_sizes(text: str, expected: int | None, message: str | None) -> None:
    checker, root = tree(f"x: {text}\n")
    assert checker.size(value(root, "x"), "x", "'1KiB'") == expected
    assert messages(checker) == (
        [] if message is None else [f"/etc/hookwall/p.yaml:1:4: {message}"]
    )


def test_counts_choices_booleans_and_strings() -> None:
    checker, root = tree("n: 0\nc: maybe\nb: 'yes'\ns: 7\n")
    assert Whole(1).read(checker, value(root, "n"), "n") is None
    assert checker.choice(value(root, "c"), "c", ("deny", "follow")) is None
    assert checker.boolean(value(root, "b"), "b") is None
    assert checker.string(value(root, "s"), "s", "a header name") is None
    assert [m.split(": ", 1)[1] for m in messages(checker)] == [
        "n: expected a whole number >= 1; got 0",
        "c: expected one of deny, follow; got 'maybe'",
        "b: expected true or false; got 'yes'",
        "s: expected a header name; got 7",
    ]


def test_helpers() -> None:
    assert subpath("", "dns") == "dns"
    assert subpath("defaults", "limits") == "defaults.limits"
    assert is_whole(3) and not is_whole(True) and not is_whole(3.0)


def test_an_override_replaces_only_the_fields_it_names() -> None:
    base = LimitConfig()
    assert apply(base, ()) is base
    merged = apply(base, (("queue", 0), ("rate", 2.0)))
    assert (merged.queue, merged.rate, merged.concurrency) == (0, 2.0, base.concurrency)
