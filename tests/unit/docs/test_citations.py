"""The project cites only what is in the repository (issue 17: a design document was cited four
times and never existed here): every relative link of the markdown files resolves, to a file
and to a heading for ``#anchor``, and every markdown file name (``*.md``) that a markdown or
Python file mentions is a file of the repository.

The names of missing documents in this module's own tests are spelled ``NAME{MD}`` so that
they are not citations themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.markdown import anchors, doc_files, links
from tests.support.paths import REPO

# Not the project's own files: tools' caches, the venv, build output.
SKIP_DIRS = {".git", ".venv", "node_modules", "build", "__pycache__", ".mypy_cache"}
SKIP_DIRS |= {".ruff_cache", ".pytest_cache", ".hypothesis"}
SOURCE_DIRS = ["src", "tests", "tools", "bench", "scripts", "deploy", "docs"]


def project_files(*suffixes: str) -> list[Path]:
    found: list[Path] = []
    for top in [REPO, *(REPO / name for name in SOURCE_DIRS)]:
        pattern = "*" if top == REPO else "**/*"
        for path in top.glob(pattern):
            parts = set(path.relative_to(REPO).parts)
            if path.is_file() and path.suffix in suffixes and not parts & SKIP_DIRS:
                found.append(path)
    return sorted(set(found))


MD = ".md"


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if REPO in path.parents else str(path)


# -- links -------------------------------------------------------------------------------------


def resolve(link_target: str, source: Path) -> tuple[Path, str | None]:
    path, _, anchor = link_target.partition("#")
    target = source if not path else (source.parent / path).resolve()
    return target, anchor or None


def broken_link(target: str, source: Path) -> str | None:
    """Why a link of ``source`` leads nowhere, or None. External links are not followed."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
        return None
    path, anchor = resolve(target, source)
    if not path.exists():
        return f"{target}: no such file in the repository"
    if REPO not in path.parents and path != REPO:
        return f"{target}: outside the repository"
    if anchor is not None:
        if path.suffix != ".md":
            return None if re.fullmatch(r"L\d+(-L\d+)?", anchor) else f"{target}: not a heading"
        if anchor not in anchors(path):
            return f"{target}: {rel(path)} has no heading with the anchor #{anchor}"
    return None


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_every_relative_link_resolves(path: Path) -> None:
    broken = [
        f"{link.where}: {why}"
        for link in links(path)
        if (why := broken_link(link.target, path)) is not None
    ]
    assert not broken, "\n".join(broken)


def test_a_broken_link_and_a_missing_anchor_are_caught(tmp_path: Path) -> None:
    readme = REPO / "README.md"
    assert broken_link("#clients", readme) is None
    assert broken_link("ARCHITECTURE.md", readme) is None
    assert broken_link("deploy/README.md#no-such-section", readme) is not None
    assert broken_link("#no-such-section", readme) is not None
    assert broken_link(f"NOPE{MD}", readme) is not None
    assert broken_link(f"https://example.com/NOPE{MD}", readme) is None


# -- mentions of markdown documents ------------------------------------------------------------

MENTION = re.compile(r"(?<![\w/.-])(?P<name>[\w./-]*\w\.md)\b")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")


def missing_document(name: str, source: Path) -> bool:
    """Whether no file of the repository answers to ``name``: a path from the mentioning
    file's directory or from the top, or (a bare name) a file of that name anywhere."""
    if (source.parent / name).exists() or (REPO / name).exists():
        return False
    return "/" in name or not any(p.name == name for p in project_files(".md"))


def missing_mentions(path: Path) -> list[str]:
    found: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for match in MENTION.finditer(URL.sub("", line)):
            if missing_document(match["name"], path):
                found.append(f"{rel(path)}:{number}: cites {match['name']}, not in the repository")
    return found


@pytest.mark.parametrize("path", [*doc_files(), *project_files(".py")], ids=lambda path: rel(path))
def test_every_cited_document_is_in_the_repository(path: Path) -> None:
    missing = missing_mentions(path)
    assert not missing, (
        "\n".join(missing) + "\ncite what the repository holds (README.md's section, "
        "ARCHITECTURE.md, the module), or add the document"
    )


def test_a_mention_of_a_missing_document_is_caught(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        f'"""See ARCHITECTURE{MD} and docs/verifying{MD}, not PLAN{MD}."""\n'
        f"# https://example.com/OTHER{MD} is someone else's\n"
        f"# and docs/gone{MD} is gone\n"
    )
    missing = missing_mentions(source)
    assert [m.split(": ", 1)[1] for m in missing] == [
        f"cites PLAN{MD}, not in the repository",
        f"cites docs/gone{MD}, not in the repository",
    ]
