"""The LICENSE file is the licence pyproject.toml declares (issue 17's packaging bullet)."""

from __future__ import annotations

import tomllib

from tests.support.paths import REPO

# pyproject's SPDX identifier -> the words its licence text opens with.
LICENCE_TEXTS = {"Apache-2.0": ("Apache License", "Version 2.0, January 2004")}


def test_the_license_file_is_the_declared_licence() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    text = (REPO / "LICENSE").read_text()
    assert declared in LICENCE_TEXTS, f"no licence text known for {declared!r}"
    assert all(words in text[:300] for words in LICENCE_TEXTS[declared])
    assert "END OF TERMS AND CONDITIONS" in text
