"""``hookwall logs`` on a real terminal (a pseudo-terminal of ``COLUMNS`` columns): the table
fits, colours come on by themselves and go with ``NO_COLOR``, and ``--follow`` prints each
row as it comes, lined up with the header laid out before any row was known."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rich.cells import cell_len

from hookwall.cli.table import as_log_line
from tests.support.proxyproc import HOOKWALL
from tests.unit.cli.exchanges import EVENTS, IDS, T0, fill

pytestmark = pytest.mark.integration

SGR = re.compile(r"\x1b\[[0-9;]*m")


class Terminal:
    """A command whose stdout is a pseudo-terminal; what it printed, line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        self.buffer = b""

    def line(self, timeout: float = 20) -> str:
        """The next whole line (waiting for it, up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"no line within {timeout}s; so far {self.buffer!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the command exited, and its side of the terminal closed
                    chunk = b""
                assert chunk, f"the command ended; so far {self.buffer!r}"
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().removesuffix("\r")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        os.close(self.master)


@contextmanager
def terminal(*args: str, columns: int, **env: str) -> Iterator[Terminal]:
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    term = Terminal([str(HOOKWALL), *args], environ | {"COLUMNS": str(columns)} | env)
    try:
        yield term
    finally:
        term.close()


@pytest.mark.parametrize("columns", [80, 100, 179])
def test_the_table_fits_the_terminal(tmp_path: Path, columns: int) -> None:
    fill(tmp_path)
    with terminal("logs", "--data-dir", str(tmp_path), columns=columns) as term:
        lines = [term.line() for _ in range(1 + len(IDS))]
        assert term.proc.wait(timeout=20) == 0
    assert any("\x1b[" in line for line in lines)  # colour, on a terminal
    shown = [SGR.sub("", line) for line in lines]
    assert all(cell_len(line) <= columns for line in shown), shown
    assert all(request_id in line for request_id, line in zip(IDS, shown[1:], strict=True))
    assert "\x1b" not in "".join(shown)  # the hostile values' ESC is shown escaped


def test_no_color_on_a_terminal(tmp_path: Path) -> None:
    fill(tmp_path)
    with terminal("logs", "--data-dir", str(tmp_path), columns=100, NO_COLOR="1") as term:
        lines = [term.line() for _ in range(1 + len(IDS))]
    assert not any("\x1b" in line for line in lines)
    assert all(cell_len(line) <= 100 for line in lines)


def test_follow_prints_each_row_as_it_comes_lined_up(tmp_path: Path) -> None:
    log = tmp_path / "hookwall.jsonl"
    log.write_text("")
    args = ["logs", "--file", str(log), "--follow", "--interval", "0.05", "--color", "never"]
    with terminal(*args, columns=100) as term:
        header = term.line()
        assert header.startswith("TIME (UTC)") and cell_len(header) <= 100
        starts = {header.index("REQUEST ID")}
        for i, event in enumerate(EVENTS):
            with log.open("a") as handle:
                handle.write(json.dumps(as_log_line(T0 + i, event)) + "\n")
            row = term.line()
            assert IDS[i] in row and cell_len(row) <= 100
            starts.add(row.index("req_"))
            status = header.index("STATUS")
            assert row[status : status + 3] == str(event["status"])
    assert len(starts) == 1  # every row's id under the header's
