"""``--log-format``: which format ``auto`` picks, console lines that are safe for a terminal
whatever a value holds, and a ``--log-file`` that stays JSON."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from hookwall.cli import run
from hookwall.cli.main import main
from hookwall.deliveries import logs

SGR = re.compile(r"\x1b\[[0-9;]*m")
UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # any control but the line end


@pytest.mark.parametrize(
    ("choice", "terminal", "chosen"),
    [
        ("auto", True, "console"),
        ("auto", False, "json"),  # a pipe, a file: make run | jq, log shippers
        ("json", True, "json"),
        ("json", False, "json"),
        ("console", True, "console"),
        ("console", False, "console"),
    ],
)
def test_the_choice(choice: str, terminal: bool, chosen: str) -> None:
    assert logs.choose_format(choice, terminal) == chosen


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, json, console"):
        logs.choose_format("pretty", True)


def test_the_flag_offers_the_formats() -> None:
    assert run.LOG_FORMATS == logs.FORMATS


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_what_is_a_terminal() -> None:
    assert logs.is_terminal(_Tty()) and not logs.is_terminal(io.StringIO())
    assert not logs.is_terminal(None)  # --quiet
    closed = open(os.devnull, "w")  # noqa: SIM115
    closed.close()
    assert not logs.is_terminal(closed)  # isatty() raises: no terminal


Lines = Callable[[], tuple[list[str], list[str]]]  # stdout, the log file


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Callable[[bool], Lines]]:
    def configure(colours: bool) -> Lines:
        out = io.StringIO()
        log_file = tmp_path / "hookwall.log"
        logs.configure(stdout=out, log_file=str(log_file), log_format="console", colours=colours)
        return lambda: (out.getvalue().splitlines(), log_file.read_text().splitlines())

    yield configure
    structlog.reset_defaults()


def test_console_lines_for_a_person_json_in_the_file(console: Callable[[bool], Lines]) -> None:
    lines = console(False)
    logs.get_logger().info(
        "exchange", request_id="req_1", method="POST", url="http://a.test/x", status=200, rule=None
    )
    stdout, file = lines()
    assert len(stdout) == 1 and not stdout[0].startswith("{")
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[info\s*\] exchange\s+request_id=req_1 ", stdout[0])
    assert "method=POST url=http://a.test/x status=200" in stdout[0]
    assert "rule" not in stdout[0]  # a field without a value is left out for a person
    event = json.loads(file[0])  # the file, for machines: JSON, every field
    assert event["event"] == "exchange" and event["rule"] is None and event["status"] == 200


def test_secrets_stay_out_of_console_lines(console: Callable[[bool], Lines]) -> None:
    lines = console(False)
    logs.get_logger().info("oops", api_token="hunter2", url="https://u:pw@a.test/?token=t1")
    stdout, _ = lines()
    assert "hunter2" not in stdout[0] and "pw@" not in stdout[0] and "t1" not in stdout[0]


class _Raw:
    """A library object whose repr does not escape what it holds."""

    def __repr__(self) -> str:
        return "<raw \x1b]0;owned\x07>"


HOSTILE: dict[str, Any] = {
    "url": "http://a.test/\x1b[2J",  # no space: structlog would print it as it is
    "spaced": "a \x1b[31m b",  # a space: structlog prints its repr
    "message": "\x9b31m\x07\x7f",
    "listed": ["\x1b[2J", {"k\x1b": "v\x1b"}],
    "raw": _Raw(),
    "bidi": "abc\u202edef",
    "markup": "[bold red]x",
}


@pytest.mark.parametrize("colours", [False, True])
def test_no_value_reaches_the_terminal_raw(console: Callable[[bool], Lines], colours: bool) -> None:
    lines = console(colours)
    logs.get_logger().warning("hostile\x1b[2J", **HOSTILE, **{"key\x1b[2J": 1})
    logging.getLogger("lib\x1b[2J").warning("from %s", "a library\x1b[2J")
    stdout, file = lines()
    assert len(stdout) == 2
    for line in stdout:
        shown = SGR.sub("", line) if colours else line
        assert "\x1b" not in shown and not UNSAFE.search(shown), line
        assert "\u202e" not in shown
    assert "\\x1b[2J" in stdout[0] and "[bold red]x" in stdout[0]
    if not colours:
        assert "\x1b" not in "".join(stdout)
    assert json.loads(file[0])["url"] == "http://a.test/\x1b[2J"  # JSON escapes it itself


def test_a_traceback_is_shown_line_by_line_and_safe(console: Callable[[bool], Lines]) -> None:
    lines = console(False)
    try:
        raise ValueError("bad \x1b[2J value")
    except ValueError:
        logs.get_logger().error("failed", exc_info=True)
    stdout, _ = lines()
    assert "[error" in stdout[0] and "failed" in stdout[0]
    assert any("ValueError: bad \\x1b[2J value" in line for line in stdout)
    assert "\x1b" not in "".join(stdout)


def test_colours_only_when_asked(console: Callable[[bool], Lines]) -> None:
    lines = console(True)
    logs.get_logger().info("proxy_started", listen=["127.0.0.1:8080"])
    assert "\x1b[" in lines()[0][0]


def test_the_workers_tag_reaches_console_lines(console: Callable[[bool], Lines]) -> None:
    """``enter_worker`` puts its processor in front of the configured ones."""
    lines = console(False)
    config = structlog.get_config()

    def add_worker(_: Any, __: str, event: Any) -> Any:
        event.update(worker=2, pid=4242)
        return event

    structlog.configure(processors=[add_worker, *config["processors"]])
    logs.get_logger().info("proxy_started")
    stdout, file = lines()
    assert "worker=2 pid=4242" in stdout[0]
    assert json.loads(file[0])["worker"] == 2


def test_the_supervisor_tells_its_workers_the_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` is decided once, by the supervisor, and handed to every worker it starts."""
    seen: list[argparse.Namespace] = []

    def supervise(args: argparse.Namespace, *_: object) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr("hookwall.app.workers.supervise", supervise)
    monkeypatch.setattr(logs, "is_terminal", lambda stream: True)
    try:
        argv = ["run", "--workers", "2", "--data-dir", str(tmp_path), "--admin-listen", "off"]
        assert main(argv) == 0
    finally:
        structlog.reset_defaults()
    (args,) = seen
    assert args.log_format == "console"
    assert args.argv[-2:] == ["--log-format", "console"]
    assert args.argv[: len(argv)] == argv
