"""ARCHITECTURE.md stays true: its module list names every module of src/hookwall, once, and
nothing that is not there."""

from __future__ import annotations

import re

from tests.support.paths import REPO

SOURCE = REPO / "src" / "hookwall"


def listed_modules() -> list[str]:
    """The paths the tree under "## The modules" names, rebuilt from its indentation."""
    text = (REPO / "ARCHITECTURE.md").read_text()
    section = text.split("## The modules", 1)[1]
    block = section.split("```", 2)[1]
    paths: list[str] = []
    parents: list[str] = []
    for line in block.splitlines()[2:]:  # after the opening fence's newline and src/hookwall/
        match = re.match(r"( *)(\S+)", line)
        if match is None:
            continue
        depth = len(match.group(1)) // 2 - 1
        name = match.group(2)
        del parents[depth:]
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
            paths.append("/".join(parents) + "/")
        else:
            paths.append("/".join([*parents, name]))
    return paths


def actual_modules() -> list[str]:
    found = []
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE)
        if "__pycache__" in relative.parts:
            continue
        if path.name == "__init__.py":
            if relative.parent.parts:
                found.append("/".join(relative.parent.parts) + "/")
        else:
            found.append("/".join(relative.parts))
    return found


def test_the_module_list_names_every_module_once_and_nothing_else() -> None:
    listed = listed_modules()
    assert len(listed) == len(set(listed)), sorted(p for p in listed if listed.count(p) > 1)
    assert set(listed) - set(actual_modules()) == set(), "listed but not in src/hookwall"
    assert set(actual_modules()) - set(listed) == set(), "in src/hookwall but not listed"


def test_each_line_of_the_list_says_what_the_module_is() -> None:
    section = (REPO / "ARCHITECTURE.md").read_text().split("## The modules", 1)[1]
    block = section.split("```", 2)[1]
    for line in block.splitlines()[2:]:
        if line.strip() and not line.rstrip().endswith("addons/"):
            assert len(line.split(None, 1)) == 2, f"no description: {line!r}"
        assert len(line) <= 100, f"longer than 100 columns: {line!r}"
