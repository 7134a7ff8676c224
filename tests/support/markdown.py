"""Reading the project's markdown the way GitHub renders it, for the tests that keep the docs
true: fenced blocks (with the marker comment before each), tables, headings and their anchors,
links. Small and strict on purpose: what it cannot read is a test failure, not a skip."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO

# The markdown files a reader of the repository sees; every test of the docs covers these.
DOC_FILES = [REPO / "README.md", REPO / "ARCHITECTURE.md", REPO / "deploy" / "README.md"]


def doc_files() -> list[Path]:
    """README.md, ARCHITECTURE.md, deploy/README.md, docs/*.md and every other markdown file
    at the top level or under bench/ (a changelog, bench/PROFILE.md, ...)."""
    found = {*DOC_FILES, *(REPO / "docs").glob("*.md"), *REPO.glob("*.md")}
    found |= set((REPO / "bench").glob("*.md"))
    return sorted(path for path in found if path.is_file())


COMMENT = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its info string (``sh``, ``yaml``, empty...), its text, the line
    of its opening fence (1-based) and the HTML comment on the nearest non-blank line before
    it, if that line is one (the block's marker)."""

    path: Path
    line: int
    info: str
    text: str
    marker: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, including ones indented inside a list item."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = re.match(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$", lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence)),
            None,
        )
        assert end is not None, f"{path.relative_to(REPO)}:{i + 1}: a fenced block is not closed"
        indent = len(opening["indent"])
        text = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        before = next((k for k in range(i - 1, -1, -1) if lines[k].strip()), None)
        comment = COMMENT.match(lines[before]) if before is not None else None
        marker = comment["body"] if comment else None
        blocks.append(Block(path, i + 1, opening["info"].strip(), text, marker))
        i = end + 1
    return blocks


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced blocks."""
    inside: str | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fence = re.match(r"^\s*(`{3,}|~{3,})", line)
        if inside is None and fence:
            inside = fence[1]
        elif inside is not None and line.strip().startswith(inside):
            inside = None
        elif inside is None:
            yield number, line


# -- tables ------------------------------------------------------------------------------------

DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


def table_cells(row: str) -> list[str]:
    """The cells of a table row as GitHub splits them: on every ``|`` not escaped as ``\\|``,
    inside backticks too (a pipe in inline code must be written ``\\|`` in a table)."""
    text = row.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", text)]


@dataclass(frozen=True)
class Table:
    path: Path
    line: int  # of the header row
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line, cells)


def tables(path: Path) -> list[Table]:
    """Every table outside fenced blocks: a header row, a delimiter row, then the rows up to
    the first blank line or line without a ``|`` (where GitHub ends the table)."""
    lines = dict(prose_lines(path))
    found: list[Table] = []
    numbers = sorted(lines)
    skip_to = 0
    for number in numbers:
        if number < skip_to:
            continue
        header, delimiter = lines[number], lines.get(number + 1)
        if "|" not in header or delimiter is None or not DELIMITER_ROW.match(delimiter):
            continue
        rows: list[tuple[int, list[str]]] = []
        row = number + 2
        while row in lines and lines[row].strip() and "|" in lines[row]:
            rows.append((row, table_cells(lines[row])))
            row += 1
        found.append(Table(path, number, table_cells(header), rows))
        skip_to = row
    return found


# -- headings, anchors and links ---------------------------------------------------------------


def anchor_of(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, inline markup and punctuation dropped
    (but ``-`` and ``_`` kept), spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (a repeated heading gets ``-1``, ``-2``...),
    plus explicit ``<a name=...>``/``id=...`` targets."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(path):
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = anchor_of(heading[1])
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
    return found


LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\((?P<target><[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\((?P<target>[^)\s]*)\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")


@dataclass(frozen=True)
class Link:
    path: Path
    line: int
    target: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def links(path: Path) -> list[Link]:
    """Every link and image of a markdown file outside code (fenced blocks and inline code)."""
    found: list[Link] = []
    for number, line in prose_lines(path):
        text = INLINE_CODE.sub("", line)
        for match in [*LINK.finditer(text), *IMAGE.finditer(text)]:
            found.append(Link(path, number, match["target"].strip("<>")))
    return found
