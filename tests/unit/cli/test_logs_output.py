"""What ``hookwall logs`` and ``logs show`` print, through the command: ``--json`` byte for
byte what it was before the tables followed the terminal (``data/*.json*`` were written by
the earlier code from the same store), the piped table, and the attempts in ``logs show``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.cells import cell_len

from hookwall.cli.main import main
from hookwall.cli.show import show_text
from hookwall.deliveries.store import Store, store_path
from tests.unit.cli.exchanges import IDS, fill

DATA = Path(__file__).with_name("data")
SGR = re.compile(r"\x1b\[[0-9;]*m")
UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # any control but the line ends


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    fill(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_json_lines_are_what_they_were(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "logs", "--json", "--limit", "0", "--data-dir", str(data_dir))
    assert out == (DATA / "logs.jsonl").read_text()


def test_show_json_is_what_it_was(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "logs", "show", IDS[0], "--json", "--data-dir", str(data_dir))
    assert out == (DATA / "show.json").read_text()


def test_json_ignores_the_terminal_width(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hookwall.cli.logs.terminal_width", lambda _: 60)
    out = run(capsys, "logs", "--json", "--limit", "0", "--data-dir", str(data_dir))
    assert out == (DATA / "logs.jsonl").read_text()


def test_piped_logs_are_plain_and_whole(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "logs", "--data-dir", str(data_dir))
    assert "\x1b" not in out and "\x9b" not in out and "…" not in out
    assert not UNSAFE.search(out)
    lines = out.splitlines()
    assert len(lines) == 1 + len(IDS)
    assert [line.split()[2] for line in lines[1:]] == list(IDS)
    assert "a-very-long-receiver-host-name.hooks.customer-of-acme.example" in lines[5]


def test_logs_on_a_terminal_fit_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hookwall.cli.logs.terminal_width", lambda _: 100)
    out = run(capsys, "logs", "--data-dir", str(data_dir), "--color", "always")
    lines = [SGR.sub("", line) for line in out.splitlines()]
    assert all(cell_len(line) <= 100 for line in lines)
    assert all(request_id in line for request_id, line in zip(IDS, lines[1:], strict=True))
    assert not UNSAFE.search("".join(lines))


@pytest.mark.parametrize("width", [80, 100, 179])
def test_show_lays_the_attempts_out_for_the_terminal(data_dir: Path, width: int) -> None:
    store = Store.open_readonly(store_path(data_dir))
    try:
        row = store.get(IDS[2])
        assert row is not None
        related = store.related(row)
    finally:
        store.conn.close()
    text = show_text(row, related, colour=True, width=width)
    table = text.split("attempts of webhook")[1].splitlines()[1:]
    assert len(table) == 1 + 3  # the header, the webhook's three attempts (IDS[3] is another)
    for line in table:
        assert cell_len(SGR.sub("", line)) <= width, line
    marked = [line for line in table if line.startswith("→ ")]
    assert len(marked) == 1 and IDS[2] in marked[0]
    assert all(request_id in "".join(table) for request_id in IDS[:3])


def test_show_of_hostile_values_prints_them_as_text(data_dir: Path) -> None:
    store = Store.open_readonly(store_path(data_dir))
    try:
        row = store.get(IDS[3])
        assert row is not None
        related = store.related(row)
    finally:
        store.conn.close()
    for width in (None, 100):
        text = SGR.sub("", show_text(row, related, colour=True, width=width))
        assert not UNSAFE.search(text)
        assert "X-Note: [bold red]x[/bold red]\\x1b[2J" in text  # a header, literally
        assert "\\x1b[2Jx[bold red]" in text  # the URL
