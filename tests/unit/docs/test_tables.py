"""Every markdown table renders as a table on GitHub: each row has the header's number of cells
(issue 17: rows of the CA table once broke out of it). GitHub splits a row on every ``|`` that
is not written ``\\|``, inside inline code too, so a stray pipe adds a cell and shifts the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markdown import doc_files, table_cells, tables
from tests.support.paths import REPO


@pytest.mark.parametrize("path", doc_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_row_has_the_headers_cells(path: Path) -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line}: {len(cells)} cells, the header at line {table.line} "
        f"has {len(table.header)} (write a '|' inside a cell as '\\|', also in backticks)"
        for table in tables(path)
        for line, cells in table.rows
        if len(cells) != len(table.header)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_clients_table_has_its_java_row_and_the_ca_of_each_client() -> None:
    """The table issue 17 found broken: every client row, Java's included, is inside it."""
    (clients,) = [t for t in tables(REPO / "README.md") if t.header[0] == "client"]
    assert clients.header[2] == "trusts hookwall's CA with"
    names = [cells[0] for _, cells in clients.rows]
    assert any(name.startswith("Java") for name in names), names
    assert all(cells[2] for _, cells in clients.rows), "a client without its CA setting"


def test_a_pipe_in_inline_code_splits_a_cell_as_github_does() -> None:
    assert table_cells("| a | `x | y` | c |") == ["a", "`x", "y`", "c"]
    assert table_cells("| a | `x \\| y` | c |") == ["a", "`x \\| y`", "c"]
    assert table_cells("a | b") == ["a", "b"]


def test_a_row_with_a_stray_pipe_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "table.markdown"
    doc.write_text("| a | b |\n|---|---|\n| 1 | `x|y` |\n| 2 | 3 |\n\nafter | text\n")
    (table,) = tables(doc)
    assert [len(cells) for _, cells in table.rows] == [3, 2]
