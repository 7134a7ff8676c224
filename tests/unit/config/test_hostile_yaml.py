"""Hostile policy files are refused fast, with a file:line:col error and no traceback.

Each file is generated here and run through `hookwall check` as a separate process, so a
crash, a traceback or a runaway allocation shows as what the operator would see. The time
bound is generous for a loaded CI machine; a refusal takes well under a second here.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hookwall.config.yamltree import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_POLICY_BYTES,
)
from hookwall.policy import PolicyError, load_policy
from tests.support.paths import POLICIES

HOOKWALL = Path(sys.executable).with_name("hookwall")
GOOD = POLICIES / "good"
SECONDS = 5.0
MEMORY = 1024 * 1024 * 1024  # address space for the check: a blow-up dies instead of swapping


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def check(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [str(HOOKWALL), "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_limit_memory,
    )
    return result, time.perf_counter() - started


def laughs_in_lists(levels: int = 9) -> str:
    lines = ["version: 1", "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    lines.append(f"destinations: [{{hosts: *l{levels - 1}}}]")
    return "\n".join(lines) + "\n"


def laughs_in_rules(levels: int = 9) -> str:
    """Aliases to whole destinations: every expansion is a rule the schema would walk."""
    lines = ["version: 1", "destinations:", "  - &r0 {hosts: [a.example], tls: passthrough}"]
    for i in range(1, levels):
        lines.append(f"  - &r{i} [{', '.join([f'*r{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def laughs_in_merges(levels: int = 40) -> str:
    lines = ["version: 1", "m0: &m0 {a: 1, b: 2, c: 3}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: [*m{i - 1}, *m{i - 1}]}}")
    return "\n".join(lines) + "\n"


def fan_of_rules(uses: int = 200_000) -> str:
    """0.8 MB of aliases to one whole destination: flat, yet 10 s and 470 MB to check before."""
    rule = (
        "x-rule: &r {hosts: [a.example], tls: passthrough, "
        "network: {allow: [10.1.0.0/16], ports: [8443]}, limits: {concurrency: 2}}\n"
    )
    return f"version: 1\n{rule}destinations: [{', '.join(['*r'] * uses)}]\n"


def deep_flow(depth: int) -> str:
    return "version: 1\ndestinations: " + "[" * depth + "]" * depth + "\n"


def deep_flow_maps(depth: int) -> str:
    return "version: 1\nx: " + "{a: " * depth + "1" + "}" * depth + "\n"


def deep_block(depth: int) -> str:
    return "version: 1\n" + "".join(f"{' ' * i}k{i}:\n" for i in range(depth)) + " " * depth + "x\n"


def deep_block_lists(depth: int) -> str:
    return "version: 1\nx:\n" + "".join(f"{' ' * i}-\n" for i in range(depth)) + " " * depth + "x\n"


ALIASES = f"aliases expand to more than {MAX_ALIAS_VALUES:,} values"
DEEP = f"nested more than {MAX_DEPTH} levels deep"
HOSTILE: dict[str, tuple[Callable[[], str], str, str]] = {
    # name: (file text, where the error points, what it says)
    "billion laughs in lists": (laughs_in_lists, r"6:\d+", ALIASES),
    "billion laughs in rules": (laughs_in_rules, r"8:\d+", ALIASES),
    "billion laughs in merge keys": (laughs_in_merges, r"\d+:\d+", ALIASES),
    "200,000 uses of one rule": (fan_of_rules, r"3:\d+", ALIASES),
    "1,000 deep flow lists": (lambda: deep_flow(1000), f"2:{15 + MAX_DEPTH - 1}", DEEP),
    "100,000 deep flow lists": (lambda: deep_flow(100_000), f"2:{15 + MAX_DEPTH - 1}", DEEP),
    "1,000 deep flow mappings": (lambda: deep_flow_maps(1000), r"2:\d+", DEEP),
    "1,000 deep block mappings": (lambda: deep_block(1000), rf"{MAX_DEPTH + 1}:\d+", DEEP),
    "3,000 deep block lists": (lambda: deep_block_lists(3000), r"\d+:\d+", DEEP),
}


@pytest.mark.parametrize(("make", "where", "says"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_files_are_refused_fast(
    tmp_path: Path, make: Callable[[], str], where: str, says: str
) -> None:
    policy = tmp_path / "hostile.yaml"
    policy.write_text(make())
    result, seconds = check(policy)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Error" not in result.stderr.split(":", 1)[0]
    assert seconds < SECONDS
    assert re.search(rf"^{re.escape(str(policy))}:{where}: YAML {says}", result.stderr, re.M), (
        result.stderr[-2000:]
    )


def test_a_file_over_the_size_limit_is_refused_where_it_crosses_it(tmp_path: Path) -> None:
    policy = tmp_path / "big.yaml"
    with policy.open("w") as out:
        out.write("version: 1\n")
        line = "# " + "x" * 1000 + "\n"
        for _ in range(MAX_FILE_BYTES // len(line) + 10):
            out.write(line)
    result, seconds = check(policy)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert seconds < SECONDS
    crossing = (MAX_FILE_BYTES - len("version: 1\n")) // len(line) + 2
    assert f"{policy}:{crossing}:" in result.stderr
    assert "larger than 8 MiB" in result.stderr and "split it into a directory" in result.stderr


def test_a_directory_of_large_files_is_bounded_as_a_whole(tmp_path: Path) -> None:
    """Each file under the per-file bound, all of them together over the policy's bound: the
    file that crosses it is named, and nothing after it is read."""
    policies = tmp_path / "policies"
    policies.mkdir()
    comment = ("# " + "x" * 1000 + "\n") * ((MAX_FILE_BYTES - 100) // 1003)
    count = MAX_POLICY_BYTES // len(comment) + 2
    for i in range(count):
        (policies / f"{i:02d}.yaml").write_text("version: 1\n" + comment)
    result, seconds = check(policies)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert seconds < SECONDS
    crossing = policies / f"{MAX_POLICY_BYTES // len(comment):02d}.yaml"
    assert f"{crossing}:" in result.stderr and "files together are larger than 32 MiB" in (
        result.stderr
    )
    assert result.stderr.count("larger than") == 1, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "version: 1\nx: !!python/object/apply:os.system ['echo owned']\n",
            "2:4: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        (
            "version: 1\nx: !!python/name:os.system\n",
            "2:4: invalid YAML value: could not determine a constructor for the tag",
        ),
        ("version: 1\ndestinations: &a [*a]\n", "2:15: recursive YAML alias"),
        ("version: 1\nversion: 1\n", "2:1: duplicate key 'version' (first defined at line 1)"),
    ],
)
def test_unsafe_tags_recursion_and_duplicates(tmp_path: Path, text: str, error: str) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    with pytest.raises(PolicyError) as raised:
        load_policy(policy)
    assert f"{policy}:{error}" in str(raised.value)


def test_non_utf8_is_refused_at_the_byte(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_bytes(b"version: 1\ndestinations:\n  - hosts: [caf\xe9.example]\n")
    with pytest.raises(PolicyError) as raised:
        load_policy(policy)
    assert str(raised.value) == f"{policy}:3:16: not valid UTF-8; save the policy file as UTF-8"


def test_anchors_within_the_budget_still_work(tmp_path: Path) -> None:
    assert len(load_policy(GOOD / "anchors.yaml").rules) == 2
    # Sharing one destination's settings among many rules is what anchors are for.
    shared = "x-shared: &shared {tls: passthrough, network: {ports: [8443]}}\n"
    rules = "".join(f"  - {{<<: *shared, hosts: [h{i}.example]}}\n" for i in range(2000))
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\n{shared}destinations:\n{rules}")
    with pytest.raises(PolicyError) as raised:  # x-shared is not a policy key, nothing else
        load_policy(policy)
    assert [issue.message.split(":")[0] for issue in raised.value.issues] == ["x-shared"]


def test_nesting_at_the_limit_is_not_refused_for_depth(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    # The root mapping is level 1; x's value opens level 2.
    policy.write_text(deep_flow_maps(MAX_DEPTH - 2))
    with pytest.raises(PolicyError) as raised:
        load_policy(policy)
    assert all(DEEP not in issue.message for issue in raised.value.issues)
    policy.write_text(deep_flow_maps(MAX_DEPTH - 1))
    with pytest.raises(PolicyError) as raised:
        load_policy(policy)
    assert any(DEEP in issue.message for issue in raised.value.issues)
