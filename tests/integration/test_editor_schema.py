"""The policy's JSON Schema in a real editor's language server: yaml-language-server (what VS
Code's YAML extension runs), as pinned in tests/clients/node (installed by .ci/run's npm ci).

It finds the schema by the policy's first line, as a user's editor would, and must report
nothing for the repository's policies and hookwall's own words for a broken one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.lspclient import LanguageServer
from tests.support.paths import REPO

NODE_DIR = REPO / "tests" / "clients" / "node"
SERVER = NODE_DIR / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
# No schema store (it is fetched from the internet); YAML 1.1, as hookwall reads policies.
SETTINGS = {
    "yaml": {
        "validate": True,
        "hover": True,
        "completion": True,
        "schemaStore": {"enable": False},
        "yamlVersion": "1.1",
    }
}


@pytest.fixture(scope="module")
def server() -> Iterator[LanguageServer]:
    node = shutil.which("node")
    if node is None or not SERVER.is_file():
        pytest.skip("yaml-language-server is not installed (cd tests/clients/node && npm ci)")
    with LanguageServer([node, str(SERVER), "--stdio"], SETTINGS) as running:
        yield running


def test_the_server_is_the_pinned_one() -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/yaml-language-server"]["version"] == "1.15.0"


@pytest.mark.parametrize("path", sorted((REPO / "policies").rglob("*.yaml")), ids=lambda p: p.name)
def test_the_repository_s_policies_are_clean_in_the_editor(
    server: LanguageServer, path: Path
) -> None:
    assert server.diagnostics(path) == []


BROKEN = """\
# yaml-language-server: $schema=hookwall.schema.json
version: 1
defaults:
  tls: intercep
  timeouts: {connect: 5 minutes}
  limits: {bogus: 1}
destinations:
  - hosts: [hooks.example.com]
    signing: {scheme: github, secrets: [whsec_literal]}
"""


def test_a_broken_policy_is_marked_where_it_is_wrong(
    server: LanguageServer, tmp_path: Path
) -> None:
    shutil.copy(REPO / "policies" / "hookwall.schema.json", tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(BROKEN)
    found = {(d["range"]["start"]["line"], d["message"]) for d in server.diagnostics(policy)}
    lines = {line for line, _ in found}
    assert lines == {3, 4, 5, 8}, found
    messages = " | ".join(message for _, message in sorted(found))
    assert '"intercept", "passthrough"' in messages
    assert "expected a duration like '2s'" in messages
    assert "bogus" in messages
    assert "expected env:NAME or file:PATH" in messages


def test_hovering_a_key_says_what_it_is_for(server: LanguageServer, tmp_path: Path) -> None:
    shutil.copy(REPO / "policies" / "hookwall.schema.json", tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(BROKEN)
    server.diagnostics(policy)  # opened
    assert "TCP connect to the receiver" in server.hover(policy, 4, 15)
