"""Host pattern canonicalisation and most-specific matching, including at scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hookwall.destinations.match import HostMatcher, canonical_pattern
from hookwall.policy import load_policy


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("hooks.example.com", "hooks.example.com"),
        ("Hooks.Example.COM", "hooks.example.com"),
        ("hooks.example.com.", "hooks.example.com"),
        ("*.Example.org.", "*.example.org"),
        ("*", "*"),
        ("*.com", "*.com"),
        ("localhost", "localhost"),
        ("_svc.internal", "_svc.internal"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("*.bücher.example", "*.xn--bcher-kva.example"),
        ("203.0.113.7", "203.0.113.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ],
)
def test_canonical_pattern(text: str, canonical: str) -> None:
    assert canonical_pattern(text) == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("foo*.com", "a '*' is only allowed alone ('*') or as the whole first label"),
        ("*.*.com", "a '*' is only allowed alone"),
        ("a.*.com", "a '*' is only allowed alone"),
        ("**", "a '*' is only allowed alone"),
        ("*.", "missing domain name"),
        ("", "missing domain name"),
        (".", "missing domain name"),
        ("a..b", "empty label"),
        (".a.example", "empty label"),
        ("a.example..", "empty label"),
        ("a b", "remove the whitespace"),
        (" a.example", "remove the whitespace"),
        ("a-.example", "label 'a-' must be 1-63 letters"),
        ("a/b.example", "label 'a/b' must be"),
        ("a" * 64 + ".example", "must be 1-63"),
        (".".join(["a" * 60] * 5), "longer than 253 characters"),
        ("1.2.3", "cannot end in a numeric label"),
        ("010.0.0.1", "cannot end in a numeric label"),
        ("*.10.0.0.1", "a wildcard cannot cover IP addresses"),
        ("fe80::1%eth0", "IPv6 zone indexes are not supported"),
        ("2001:db8::g", "not a valid IP address"),
        ("[a.example]", "not a valid IP address"),
    ],
)
def test_invalid_patterns(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="invalid host pattern") as caught:
        canonical_pattern(text)
    assert reason in str(caught.value)


def test_invalid_idna_label() -> None:
    with pytest.raises(ValueError, match="invalid host pattern"):
        canonical_pattern("a\u200d.example")  # a zero-width joiner is not allowed here


def _matcher(*patterns: str) -> HostMatcher[str]:
    matcher: HostMatcher[str] = HostMatcher()
    for pattern in patterns:
        matcher.add(canonical_pattern(pattern), pattern)
    return matcher


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.b.example.com", "a.b.example.com"),
        ("x.b.example.com", "*.b.example.com"),
        ("y.x.b.example.com", "*.b.example.com"),
        ("b.example.com", "*.example.com"),
        ("example.com", "*"),
        ("com", "*"),
        ("203.0.113.7", "203.0.113.7"),
        ("7.113.0.203", "*"),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_specificity_order(host: str, expected: str) -> None:
    matcher = _matcher("*", "*.example.com", "*.b.example.com", "a.b.example.com")
    matcher.add("203.0.113.7", "203.0.113.7")
    matcher.add("2001:db8::1", "2001:db8::1")
    assert matcher.lookup(host) == expected


def test_no_star_means_no_match() -> None:
    matcher = _matcher("*.example.com")
    assert matcher.lookup("example.com") is None
    assert matcher.lookup("other.org") is None
    assert matcher.lookup("a.example.com") == "*.example.com"


def test_numeric_hosts_never_match_wildcards() -> None:
    matcher = _matcher("*.example.com")
    assert matcher.lookup("::ffff:1.example.com") is None


def test_duplicate_patterns_are_refused() -> None:
    matcher = _matcher("a.example", "*.example", "*")
    assert len(matcher) == 3
    for pattern in ("a.example", "*.example", "*"):
        assert pattern in matcher
        with pytest.raises(ValueError, match="duplicate host pattern"):
            matcher.add(pattern, "again")


class _CountingDict(dict[str, Any]):
    """A dict that counts lookups, to show matching does not scan the rules."""

    lookups = 0

    def get(self, key: str, default: Any = None) -> Any:
        _CountingDict.lookups += 1
        return super().get(key, default)


def test_5000_rules_load_and_lookup_is_a_few_dict_gets(tmp_path: Path) -> None:
    lines = ["version: 1", "destinations:"]
    for i in range(5000):
        lines.append(f'  - {{hosts: ["h{i}.example.com", "*.w{i}.example.net"], name: r{i}}}')
    lines.append('  - {hosts: ["*"], name: star, action: deny}')
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")

    policy = load_policy(path)
    assert len(policy.rules) == 5001
    for i in (0, 1, 2500, 4999):
        exact = policy.settings_for(f"h{i}.example.com")
        wild = policy.settings_for(f"a.b.w{i}.example.net")
        assert exact.rule is not None and exact.rule.name == f"r{i}"
        assert wild.rule is exact.rule
        assert wild is exact  # merged once per rule at load time
    star = policy.settings_for("h5000.example.com")
    assert star.rule is not None and star.rule.name == "star" and star.action == "deny"
    assert policy.settings_for("w1.example.net").action == "deny"  # apex: only '*' matches

    matcher = policy._matcher
    matcher._exact = _CountingDict(matcher._exact)
    matcher._wildcards = _CountingDict(matcher._wildcards)
    expected = policy.settings_for("a.w4999.example.net")
    _CountingDict.lookups = 0
    host = "x.y.z.w4999.example.net"
    assert policy.settings_for(host) is expected
    # One exact lookup plus at most one per label; independent of the 5000 rules.
    assert _CountingDict.lookups <= 2 * (host.count(".") + 1)
