"""``hookwall logs``' table: on a terminal it fits the width and never cuts the request id;
piped it is the same whatever the width, whole, one word per field, without escapes; hostile
values (ESC, newlines, rich markup) print as text."""

from __future__ import annotations

import re

import pytest
from rich.cells import cell_len

from hookwall.cli import table
from hookwall.cli.table import PLAIN, REQUEST_ID, Table, layout
from tests.unit.cli.exchanges import EVENTS, IDS, T0

SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours a Table writes, and nothing else
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def rendered(width: int | None, colour: bool) -> list[str]:
    t = Table(width, colour)
    return [t.header(), *(t.row(T0 + 60 * i, e) for i, e in enumerate(EVENTS))]


def visible(line: str) -> str:
    return SGR.sub("", line)


@pytest.mark.parametrize("width", [80, 100, 120, 179, 250])
@pytest.mark.parametrize("colour", [True, False])
def test_a_terminal_table_fits_its_width_and_keeps_the_id_whole(width: int, colour: bool) -> None:
    lines = rendered(width, colour)
    for line in lines:
        assert cell_len(visible(line)) <= width, line
        assert not UNSAFE.search(visible(line)), line  # only the colours are escapes
    for request_id, line in zip(IDS, lines[1:], strict=True):
        assert request_id in visible(line)
    assert all(visible(line).index("req_") == visible(lines[1]).index("req_") for line in lines[1:])


@pytest.mark.parametrize("width", range(44, 260))
def test_every_width_from_time_and_id_up_fits(width: int) -> None:
    shown = layout(width)
    assert shown.total <= width and REQUEST_ID in shown.widths
    assert shown.widths[REQUEST_ID] == PLAIN[REQUEST_ID]


def test_what_each_width_keeps() -> None:
    """The columns people scan for first stay longest: time, id, host, status/reason, ms."""
    assert list(layout(80).widths) == ["TIME (UTC)", "REQUEST ID", "HOST", "STATUS", "MS"]
    assert layout(80).folded  # the reason shares the status column
    assert list(layout(100).widths) == [
        "TIME (UTC)", "REQUEST ID", "HOST", "STATUS", "REASON", "MS",
    ]  # fmt: skip
    assert layout(179).widths == PLAIN
    narrow = rendered(80, False)
    assert narrow[1].startswith("11-18 11:06:40 req_01a1c83d2f607d01c4a9e2b3 hooks.acme.com")
    assert "504 respons…" in narrow[1]  # folded: the reason after the status
    assert "2026-11-18 11:06:40" in rendered(100, False)[1]


def test_the_widest_terminal_table_is_the_piped_one_cut_where_a_value_is_longer() -> None:
    wide, piped = rendered(179, False), rendered(None, False)
    assert wide[:4] == piped[:4]  # the rows whose values fit their columns
    assert "a-very-long-receiver-ho…" in wide[5] and "a-very-long-receiver-ho…" not in piped[5]


def test_piped_output_is_whole_plain_and_one_word_per_field() -> None:
    lines = rendered(None, False)
    assert not any("\x1b" in line or "…" in line for line in lines)
    assert "a-very-long-receiver-host-name.hooks.customer-of-acme.example" in lines[5]
    assert "/webhooks/with/a/long/path/that/goes/on" in lines[5]
    # date, time, then one field per column, whatever a value holds (spaces are escaped)
    assert {len(line.split()) for line in lines[1:]} == {len(PLAIN) + 1}
    assert [line.split()[2] for line in lines[1:]] == list(IDS)  # awk '{print $3}'
    assert lines[0].split() == [
        "TIME", "(UTC)", "REQUEST", "ID", "SENDER", "METHOD", "HOST", "PATH", "STATUS",
        "REASON", "WEBHOOK", "ID", "MS",
    ]  # fmt: skip


def test_the_piped_table_does_not_depend_on_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    before = rendered(None, False)
    monkeypatch.setenv("COLUMNS", "60")
    assert rendered(None, False) == before


@pytest.mark.parametrize("width", [None, 100, 179])
def test_hostile_values_print_as_text(width: int | None) -> None:
    """Rich markup stays literal (cells are Text, never markup); controls are escaped."""
    hostile = visible(rendered(width, True)[4])
    assert not UNSAFE.search(hostile)
    assert "[bold" in hostile  # the sender's "[bold red]x[/bold red]", printed, not obeyed
    if width is None or width >= 179:
        assert "\\x1b[2J" in hostile  # the ESC in the webhook id, shown escaped


def test_markup_in_a_value_does_not_style_the_line() -> None:
    row = Table(179, True).row(T0, EVENTS[3])
    assert "\x1b[1;31m" not in row and "\x1b[1m" not in row  # no bold red from "[bold red]"


def test_colour_only_when_asked() -> None:
    assert not any("\x1b" in line for line in rendered(100, False))
    coloured = rendered(100, True)
    assert "\x1b[31m" in coloured[1]  # the 504 refusal in red
    assert "\x1b[1m" in coloured[0]  # the header in bold


@pytest.mark.parametrize("colour", [True, False])
def test_a_longer_id_than_usual_is_never_cut(colour: bool) -> None:
    odd = dict(EVENTS[0], request_id="req_" + "f" * 40)
    for width in (80, 100, 179):
        row = visible(Table(width, colour).row(T0, odd))
        assert "req_" + "f" * 40 in row and cell_len(row) <= width, row
    assert visible(Table(30, colour).row(T0, odd)) == "req_" + "f" * 40  # wider, but whole


def test_wide_characters_are_measured_in_cells() -> None:
    wide = dict(EVENTS[0], host="例え.テスト.jp", url="https://例え.テスト.jp/パス")
    for width in (80, 100, 179):
        assert cell_len(Table(width, False).row(T0, wide)) <= width


def test_cells_keep_their_values() -> None:
    values = table.cells(T0, EVENTS[2])
    assert values["STATUS"] == "503" and values["REASON"] == "circuit-open"
    assert table.cells(T0, EVENTS[2], folded=True)["STATUS"] == "503 circuit-open"
    assert table.cells(T0, EVENTS[1], folded=True)["STATUS"] == "500"
