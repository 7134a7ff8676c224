"""``.pre-commit-hooks.yaml``: a manifest pre-commit itself accepts, whose hook checks a
policy without its secrets and fails a commit on a bad one."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pre_commit.clientlib import load_manifest

from tests.support.paths import REPO

MANIFEST = REPO / ".pre-commit-hooks.yaml"
HOOKWALL = Path(sys.executable).with_name("hookwall")


@pytest.fixture(scope="module")
def hook() -> dict[str, Any]:
    hooks = load_manifest(str(MANIFEST))  # pre-commit's own validation of the manifest
    assert [h["id"] for h in hooks] == ["hookwall-check"]
    found: dict[str, Any] = hooks[0]
    return found


def run_hook(hook: dict[str, Any], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command pre-commit runs: the entry, then the args (no file names are passed)."""
    assert hook["pass_filenames"] is False  # a directory's files are one policy
    entry = shlex.split(hook["entry"])
    assert entry[0] == "hookwall"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HW_TEST_")}
    return subprocess.run(
        [str(HOOKWALL), *entry[1:], *hook["args"]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_hook_runs_on_policy_files(hook: dict[str, Any]) -> None:
    files = re.compile(hook["files"])
    assert files.search("policies/prod.yaml")
    assert files.search("policies/prod.yml")
    assert not files.search("src/app.py")
    assert hook["language"] == "python"  # pre-commit installs this package to run it
    assert "--no-secrets" in shlex.split(hook["entry"])


def test_the_hook_passes_a_policy_whose_secrets_are_absent(
    hook: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "hooks.yaml").write_text(
        "version: 1\n"
        "destinations:\n"
        "  - name: acme\n"
        "    hosts: [hooks.acme.example]\n"
        "    signing: {scheme: standard-webhooks, secrets: [env:HW_TEST_NOT_IN_CI]}\n"
    )
    done = run_hook(hook, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "secrets: not read" in done.stdout


def test_the_hook_fails_a_bad_policy_with_file_and_line(
    hook: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "hooks.yaml").write_text(
        "version: 1\ndefaults:\n  timeouts: {connect: soon}\n"
    )
    done = run_hook(hook, tmp_path)
    assert done.returncode == 1
    assert "policies/hooks.yaml:3:" in done.stderr
    assert "defaults.timeouts.connect" in done.stderr


def test_the_hook_checks_this_repository_s_policies(hook: dict[str, Any]) -> None:
    done = run_hook(hook, REPO)
    assert done.returncode == 0, done.stderr
