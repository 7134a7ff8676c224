"""The project's own import contracts (tools/importrules.py), on small graphs of their own,
and the real contracts on hookwall itself (what `make lint` runs)."""

from __future__ import annotations

import os
import subprocess
import sys

import grimp
import pytest

from tests.support.paths import REPO
from tools.importrules import AcyclicModulesContract, Roles, RolesContract

ROLES = ["low: app.base, app.base.**", "middle: fallback", "high: app.*.plugin", "top: app.cli"]


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported, line_number=7, line_contents="")
    return graph


def test_a_role_may_go_on_over_several_lines() -> None:
    roles = Roles(["low: app.a", "low: app.b", "high: app.c"])
    assert roles.names == ["low", "high"]
    assert roles.rank("app.a") == roles.rank("app.b") == 0 and roles.rank("app.c") == 1


def test_a_module_has_the_role_of_the_first_pattern_it_matches_else_the_fallback() -> None:
    roles = Roles(ROLES)
    assert roles.rank("app.base") == roles.rank("app.base.units") == 0
    assert roles.rank("app.things.plugin") == 2
    assert roles.rank("app.things.plugin.more") == 1  # * is one name, not several
    assert roles.rank("app.things.logic") == 1
    assert roles.rank("app.cli") == 3


@pytest.mark.parametrize(
    ("importer", "imported", "kept"),
    [
        ("app.things.logic", "app.base.units", True),  # down
        ("app.things.logic", "app.other.logic", True),  # the same role
        ("app.cli", "app.things.plugin", True),
        ("app.base.units", "app.things.logic", False),  # up
        ("app.things.logic", "app.things.plugin", False),
        ("app.things.plugin", "app.cli", False),
        ("app.things.logic", "json", True),  # outside the root: not judged
    ],
)
def test_roles_refuse_exactly_the_imports_that_go_up(
    importer: str, imported: str, kept: bool
) -> None:
    contract = RolesContract("roles", {}, {"roles": ROLES, "root": "app"})
    check = contract.check(_graph((importer, imported)), verbose=False)
    assert check.kept is kept
    if not kept:
        [(who, _, what, _, lines)] = check.metadata["upward"]
        assert (who, what, lines) == (importer, imported, "7")


def test_a_cycle_is_found_and_given_as_the_chain_that_closes_it() -> None:
    graph = _graph(("app.a", "app.b"), ("app.b", "app.c"), ("app.c", "app.a"), ("app.c", "app.d"))
    check = AcyclicModulesContract("acyclic", {}, {"root": "app"}).check(graph, verbose=False)
    assert not check.kept
    [cycle] = check.metadata["cycles"]
    assert [(a, b) for a, b, _ in cycle] == [
        ("app.a", "app.b"),
        ("app.b", "app.c"),
        ("app.c", "app.a"),
    ]
    assert {lines for _, _, lines in cycle} == {"7"}


def test_no_cycle_no_complaint() -> None:
    graph = _graph(("app.a", "app.b"), ("app.b", "app.c"), ("app.a", "app.c"))
    assert AcyclicModulesContract("acyclic", {}, {"root": "app"}).check(graph, verbose=False).kept


def test_hookwall_keeps_every_contract() -> None:
    """What `make lint` checks, so the suite fails too when a change breaks the direction."""
    # This repository's src first: a worktree is checked, not the editable install's source.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), str(REPO / "src")])}
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run(
        [lint, "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:]
