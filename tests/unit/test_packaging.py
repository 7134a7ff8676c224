"""pyproject.toml's metadata (issue 17's packaging bullet): one source for the version, the
classifiers real trove classifiers, the files a release ships.

The built wheel itself (its version, entry point, package data) is checked from a clean
clone in tests/integration/test_packaging.py.
"""

from __future__ import annotations

import ast
import re
import tomllib
from typing import Any

import pytest

import hookwall
from hookwall.cli.main import build_parser
from tests.support.paths import REPO

SOURCE = REPO / "src" / "hookwall" / "__init__.py"


def project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data


def test_the_version_has_one_source() -> None:
    """pyproject has no version of its own: setuptools reads hookwall.__version__, the one
    `hookwall --version` prints, so the two cannot disagree."""
    data = project()
    assert "version" not in data["project"], "a second version: keep it in __init__.py only"
    assert "version" in data["project"]["dynamic"]
    dynamic = data["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "hookwall.__version__"}


def test_the_version_is_a_literal_setuptools_reads_without_importing_hookwall() -> None:
    """setuptools reads ``attr:`` statically only from a plain assignment of a string;
    anything else would import hookwall (and its dependencies) at build time."""
    tree = ast.parse(SOURCE.read_text())
    assigned = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
    ]
    assert len(assigned) == 1
    assert isinstance(assigned[0], ast.Constant)
    assert assigned[0].value == hookwall.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", hookwall.__version__)


def test_hookwall_version_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert capsys.readouterr().out == f"hookwall {hookwall.__version__}\n"


def release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def test_the_changelog_invents_no_release() -> None:
    """Keep a Changelog: Unreleased first; a release heading only for a version that exists
    (not after the package's own) and with its date."""
    text = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", text, re.MULTILINE)
    assert headings[0] == ("Unreleased", "")
    for version, rest in headings[1:]:
        assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest), version
        assert release(version) <= release(hookwall.__version__), version
    assert f"`{hookwall.__version__}`" in text.split("## [Unreleased]")[0]


def test_security_policy_names_the_supported_version() -> None:
    text = (REPO / "SECURITY.md").read_text()
    for heading in ("## Reporting a vulnerability", "## Supported versions", "## In scope"):
        assert heading in text
    assert f"({hookwall.__version__}" in text.split("## Supported versions")[1].split("## ")[0]
    assert "@" not in text, "no contact address is invented: there is none yet"


def test_the_container_build_has_every_file_the_package_build_reads() -> None:
    """deploy/Dockerfile builds hookwall from what it copies (and its .dockerignore admits):
    the readme and the licence files are read by the build."""
    meta = project()["project"]
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    copied = {
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    }
    for needed in ("pyproject.toml", meta["readme"], *meta["license-files"]):
        assert needed in copied, f"deploy/Dockerfile does not COPY {needed}"


def test_the_metadata_a_release_needs() -> None:
    meta = project()["project"]
    assert meta["license"] == "Apache-2.0"
    assert meta["license-files"] == ["LICENSE"]
    assert all((REPO / name).is_file() for name in meta["license-files"])
    assert meta["authors"] == [{"name": "hookwall developers"}]
    assert all("@" not in author.get("email", "") for author in meta["authors"])
    assert meta["keywords"] and meta["readme"] == "README.md"
    # No public home yet: no URL that would point nowhere (or somewhere else).
    assert "urls" not in meta
    # The build backend must understand PEP 639 (license-files).
    assert project()["build-system"]["requires"] == ["setuptools>=77"]


def test_the_classifiers_are_trove_classifiers() -> None:
    classifiers: list[str] = project()["project"]["classifiers"]
    assert classifiers == sorted(set(classifiers))
    assert not [c for c in classifiers if c.startswith("License ::")], (
        "PEP 639: the SPDX `license` replaces licence classifiers (setuptools refuses both)"
    )
    requires = project()["project"]["requires-python"]
    oldest = int(re.fullmatch(r">=3\.(\d+)", requires).group(1))  # type: ignore[union-attr]
    versions = [
        c for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions and min(int(v.rsplit(".", 1)[1]) for v in versions) == oldest
    trove = pytest.importorskip("trove_classifiers", reason="pip install trove-classifiers")
    assert [c for c in classifiers if c not in trove.classifiers] == []
    assert [c for c in classifiers if c in trove.deprecated_classifiers] == []


def test_the_extras_are_not_hard_dependencies() -> None:
    meta = project()["project"]
    names = [re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0] for dep in meta["dependencies"]]
    assert "redis" not in names and "uvloop" not in names
    assert set(meta["optional-dependencies"]) >= {"redis", "uvloop"}
