"""The README's "Five minutes with hookwall" works as written: its blocks are typed into two
terminals, in order, and what they print is checked.

The commands come from README.md itself, never from a copy here: every fenced block after a
``<!-- walkthrough: SPEC -->`` comment is a step, where SPEC is

- ``terminal N``: type the block into terminal N (a block whose last command is ``make run``
  keeps running there: the step is done when the proxy logs ``proxy_started``);
- ``terminal N, after ctrl-c``: press Ctrl-C in terminal N first (the proxy there stops, and
  the shell has the terminal back), then type the block;
- ``output`` / ``output, terminal N``: what the previous step printed, in its own terminal or
  in terminal N (since that step began). Each line must appear, in order, as a whole line;
  ``...`` stands for anything, and request ids, webhook ids, key ids, times, client ports and
  ``*_ms`` durations may differ.

Each terminal is an interactive bash (no rc files, no line editing) on a pseudo-terminal of
its own, so ``&`` jobs, ``kill %1`` and Ctrl-C behave as they do for a person. Both run in a
network namespace of the test's own with only ``lo``: the README's fixed ports (8080, 9090,
9000, 9001) are free there, and nothing can leave the machine. HOME is a temporary directory
(hookwall's CA and delivery store go there, and no ``~/.curlrc`` applies).

What is not run as a person would: ``git clone <this repository>`` clones this checkout (its
committed HEAD: commit what the walkthrough needs), and before ``make run`` the clone gets the
venv this test runs in as ``.venv`` (a symlink, with the lock files dated before its stamp, so
``make`` finds it up to date and installs nothing); ``PYTHONPATH`` points at the hookwall
source this test session imports. ``make run`` itself really runs, with the README's ARGS.

Besides the README's outputs, the test checks what the walkthrough is for, in hookwall's own
log: the SSRF attempt reached hookwall and was refused ``address-blocked`` (the request id curl
printed is the logged one), the delivery reached the receiver through hookwall, the signed
webhook carried a valid Standard Webhooks signature, and every proxy started on
127.0.0.1:8080 and stopped; and at the end no process of the walkthrough is left.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

import hookwall
from tests.support.paths import REPO
from tests.support.waits import wait_until

README = REPO / "README.md"
MARK = re.compile(r"^<!-- walkthrough: (?P<spec>[^>]*?) -->\s*$")
FENCE = re.compile(r"^```")
SPEC = re.compile(
    r"^(?:terminal (?P<t>[12])(?P<ctrl_c>, after ctrl-c)?|output(?:, terminal (?P<o>[12]))?)$"
)
CLONE_PLACEHOLDER = "<this repository>"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # curl prints header names bold on a terminal
STEP_TIMEOUT = 20.0  # seconds for one step (a proxy start, a command); the test takes ~10 s

TOOLS = ["bash", "git", "make", "curl", "python3", "unshare", "nsenter", "setsid", "ip"]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root, for a network namespace of its own"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS),
        reason=f"needs {', '.join(TOOLS)} on PATH",
    ),
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout: nothing to clone"),
]


# -- the steps, read from README.md -------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    kind: Literal["type", "output"]
    terminal: int | None  # None for an "output" of the previous step's terminal
    ctrl_c: bool
    text: str
    line: int  # of the mark in README.md, for messages

    @property
    def starts_proxy(self) -> bool:
        """Whether the block ends in ``make run``, which keeps running in its terminal."""
        commands = [
            line.strip()
            for line in self.text.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        return bool(commands) and re.match(r"make run\b", commands[-1]) is not None


def walkthrough_steps(readme: str) -> list[Step]:
    """Every marked block of ``readme``, in order. A mark not followed by a fenced block, or
    with a SPEC this test does not know, is an error: a typo must not drop a step."""
    lines = readme.splitlines()
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        mark = MARK.match(lines[i])
        i += 1
        if not mark:
            continue
        spec = SPEC.match(mark["spec"])
        assert spec, f"README.md:{i}: unknown walkthrough mark {mark['spec']!r}"
        assert i < len(lines) and FENCE.match(lines[i]), (
            f"README.md:{i}: a walkthrough mark must be followed by a fenced block"
        )
        start = i + 1
        end = next((j for j in range(start, len(lines)) if FENCE.match(lines[j])), None)
        assert end is not None, f"README.md:{i + 1}: the block is not closed"
        text = "\n".join(lines[start:end]) + "\n"
        if spec["t"]:
            steps.append(Step("type", int(spec["t"]), bool(spec["ctrl_c"]), text, i))
        else:
            terminal = int(spec["o"]) if spec["o"] else None
            steps.append(Step("output", terminal, False, text, i))
        i = end + 1
    return steps


# -- comparing what a terminal printed with what the README shows -------------------------------

VOLATILE = [
    (re.compile(r"req_[0-9a-f]{24}"), "req_<id>"),
    (re.compile(r"msg_[0-9A-Za-z]{16,}"), "msg_<id>"),
    (re.compile(r"hmac:[0-9a-f]{12}"), "hmac:<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d\]"), "[<time>]"),
    (re.compile(r'("client": ?"[^"]*:)\d+"'), r'\1<port>"'),
    (re.compile(r'("\w+_ms": ?)\d+(?:\.\d+)?'), r"\1<ms>"),
]


def normalise(line: str) -> str:
    for pattern, replacement in VOLATILE:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def line_pattern(expected: str) -> re.Pattern[str]:
    """A README output line as a pattern for a whole printed line: ``...`` is anything."""
    return re.compile(re.escape(normalise(expected)).replace(r"\.\.\.", ".*"))


def shows(expected: str, printed: str) -> bool:
    return unmatched(expected, printed) is None


def unmatched(expected: str, printed: str) -> str | None:
    """The first line of ``expected`` that ``printed`` lacks (in order), or None."""
    lines = [normalise(line) for line in printed.replace("\r", "").split("\n")]
    at = 0
    for want in (line for line in expected.splitlines() if line.strip()):
        pattern = line_pattern(want)
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


# -- a terminal: interactive bash on a pseudo-terminal ------------------------------------------


class Terminal:
    """An interactive bash on a pty of its own: typed input, Ctrl-C and job control as for a
    person. Everything it prints is kept (``\\r`` dropped), and waits are woken by new
    output, never by a timer."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self._master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # lflags: what is typed is not printed back
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        shell = ["bash", "--norc", "--noprofile", "--noediting", "-i"]
        self.process = subprocess.Popen(
            [*argv, "setsid", "--ctty", *shell],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
        )
        os.close(slave)
        self._text = ""
        self._changed = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()
        self._markers = 0

    @property
    def pid(self) -> int:
        """The shell's pid (argv execs it: no fork on the way), and its session id."""
        return self.process.pid

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every process on the pty closed it
                chunk = b""
            with self._changed:
                if not chunk:
                    self._closed = True
                    self._changed.notify_all()
                    return
                self._text += decoder.decode(chunk).replace("\r", "")
                self._changed.notify_all()

    @property
    def offset(self) -> int:
        with self._changed:
            return len(self._text)

    def printed(self, since: int = 0) -> str:
        """What the terminal printed since ``since``, as a person reads it (no colours)."""
        with self._changed:
            return ANSI.sub("", self._text[since:])

    def wait_for(
        self, done: Callable[[str], bool], what: str, since: int, timeout: float = STEP_TIMEOUT
    ) -> None:
        """Wait until ``done`` holds for what was printed since ``since``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(ANSI.sub("", self._text[since:])):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise AssertionError(
                        f"{self.name}: {what} not seen within {timeout}s; it printed:\n"
                        f"{ANSI.sub('', self._text[since:])[-6000:]}"
                    )
                self._changed.wait(left)

    def type(self, text: str) -> None:
        data = text.encode()
        while data:
            data = data[os.write(self._master, data) :]

    def settle(self) -> None:
        """Wait until the shell has run everything typed so far (a marker it prints)."""
        self._markers += 1
        marker = f"__walkthrough_{self._markers}__"
        since = self.offset
        # The typed line differs from its output, so even an echo could not match it.
        self.type(f"printf '__walkthrough_%s__\\n' {self._markers}\n")
        self.wait_for(
            lambda text: marker in text.split("\n"), f"the shell's prompt ({marker})", since
        )

    def ctrl_c(self) -> None:
        self.type("\x03")

    def session(self) -> list[int]:
        """The pids of this terminal's session (the shell, its jobs and their children)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == self.pid:  # state, ppid, pgrp, session
                pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        """Stop every process of the session, the shell last."""
        for pid in self.session():
            if pid != self.pid:
                with _gone():
                    os.kill(pid, signal.SIGKILL)
        with _gone():
            self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        os.close(self._master)


class _gone:
    """``with _gone(): os.kill(...)``: a process that already exited is fine."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is ProcessLookupError


# -- the walkthrough ----------------------------------------------------------------------------


def the_venv() -> Path:
    """The venv this test runs in, for the clone's ``.venv``; skips without one."""
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix) or not (prefix / "bin" / "hookwall").exists():
        pytest.skip("runs only from a venv with hookwall installed (make test)")
    if not (prefix / ".installed").exists():
        pytest.skip(f"{prefix} has no .installed stamp: make did not build it")
    return prefix


def stamp_prerequisites(makefile: Path) -> list[str]:
    """The files the venv's stamp depends on, as the Makefile's ``$(STAMP):`` rule lists them."""
    for line in makefile.read_text().splitlines():
        if line.startswith("$(STAMP):"):
            return line.partition(":")[2].split()
    raise AssertionError(f"{makefile} has no $(STAMP): rule")


def give_venv(clone: Path, venv: Path) -> None:
    """The clone gets ``venv`` as ``.venv``, which make must find up to date: it must never
    install anything (into a venv that is not the clone's)."""
    (clone / ".venv").symlink_to(venv)
    stamp = (venv / ".installed").stat().st_mtime
    for name in stamp_prerequisites(clone / "Makefile"):
        os.utime(clone / name, (stamp - 1, stamp - 1))
    check = subprocess.run(
        ["make", "-q", ".venv/.installed"], cwd=clone, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, f"make would rebuild the venv in the clone: {check}"


def terminal_env(home: Path) -> dict[str, str]:
    """A new user's environment: no proxy settings, no make or hookwall variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy")
        and not k.startswith(("HOOKWALL_", "MAKE", "PYTHON", "BASH_", "PYTEST"))
        and k not in {"MFLAGS", "ENV", "PROMPT_COMMAND", "CURL_HOME", "VIRTUAL_ENV", "CDPATH"}
    }
    source = Path(hookwall.__file__).resolve().parents[1]
    env.update(HOME=str(home), TERM="dumb", PS1="", PS2="", PYTHONPATH=str(source))
    return env


@pytest.fixture
def terminals(tmp_path: Path) -> Iterator[dict[int, Terminal]]:
    """Terminals 1 and 2, in one network namespace of their own with only ``lo`` up."""
    home = tmp_path / "home"
    home.mkdir()
    env = terminal_env(home)
    up = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    opened: dict[int, Terminal] = {}
    try:
        opened[1] = Terminal("terminal 1", up, env, tmp_path)
        opened[1].settle()  # the namespace exists and lo is up
        enter = ["nsenter", f"--net=/proc/{opened[1].pid}/ns/net"]
        opened[2] = Terminal("terminal 2", enter, env, tmp_path)
        opened[2].settle()
        yield opened
    finally:
        for terminal in opened.values():
            terminal.close()


def alone(terminal: Terminal) -> bool:
    """Whether the shell is the only live process left in its terminal's session. A job that
    exited may stay a zombie until the shell next reads a command line (interactive bash
    reaps and reports its jobs then): it has stopped all the same."""
    return [pid for pid in terminal.session() if not exited(pid)] == [terminal.pid]


def exited(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in {"Z", "X"}


def describe(pid: int) -> str:
    """A process as ``ps`` would show it: pid, state, command line."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return f"{pid} (gone)"
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return f"{pid} {state} ppid={ppid} ({name}) {argv}"


def events(printed: str) -> list[dict[str, Any]]:
    """hookwall's JSON log lines among what a terminal printed."""
    found = []
    for line in printed.split("\n"):
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "event" in event:
                found.append(event)
    return found


def exchange(log: list[dict[str, Any]], url: str) -> dict[str, Any]:
    matching = [e for e in log if e["event"] == "exchange" and e.get("url") == url]
    assert len(matching) == 1, f"expected one exchange event for {url}; got {matching}"
    return matching[0]


def test_the_readme_walkthrough_works_as_written(
    terminals: dict[int, Terminal], tmp_path: Path
) -> None:
    venv = the_venv()
    steps = walkthrough_steps(README.read_text(encoding="utf-8"))
    assert [s for s in steps if s.kind == "type"], "README.md marks no walkthrough step"
    proxy_at: dict[int, int] = {}  # where the running proxy of a terminal started printing
    step_start: dict[int, int] = {}  # where each terminal was when the last step began
    last: Step | None = None
    for step in steps:
        where = f"README.md:{step.line}"
        if step.kind == "output":
            assert last is not None, f"{where}: an output before any step"
            number = step.terminal or last.terminal
            assert number is not None
            terminal = terminals[number]
            try:
                terminal.wait_for(
                    functools.partial(shows, step.text),
                    f"{where}: the README's output",
                    step_start[number],
                )
            except AssertionError as missing:
                line = unmatched(step.text, terminal.printed(step_start[number]))
                raise AssertionError(f"first line not printed: {line!r}\n{missing}") from None
            continue
        assert step.terminal is not None
        terminal = terminals[step.terminal]
        if step.ctrl_c:
            assert step.terminal in proxy_at, f"{where}: Ctrl-C, but no proxy runs there"
            terminal.ctrl_c()
            terminal.wait_for(
                lambda text: any(e["event"] == "proxy_stopped" for e in events(text)),
                f"{where}: proxy_stopped after Ctrl-C",
                proxy_at.pop(step.terminal),
            )
            terminal.settle()  # make has exited, and the shell reads again
        step_start = {n: t.offset for n, t in terminals.items()}
        text = step.text.replace(CLONE_PLACEHOLDER, shlex.quote(str(REPO)))
        if step.starts_proxy:
            cwd = Path(os.readlink(f"/proc/{terminal.pid}/cwd"))
            if not (cwd / ".venv").exists():
                give_venv(cwd, venv)
            terminal.type(text)
            proxy_at[step.terminal] = step_start[step.terminal]
            terminal.wait_for(
                lambda text: any(e["event"] == "proxy_started" for e in events(text)),
                f"{where}: proxy_started",
                step_start[step.terminal],
            )
        else:
            terminal.type(text)
            terminal.settle()
        last = step

    # What the walkthrough demonstrates, in hookwall's own words.
    one, two = terminals[1].printed(), terminals[2].printed()
    log = events(one)
    started = [e for e in log if e["event"] == "proxy_started"]
    assert len(started) == 3, started
    assert all(e["listen"] == ["127.0.0.1:8080"] for e in started), started
    assert [e["event"] for e in log].count("proxy_stopped") == 3
    assert not proxy_at, "a proxy is left running at the end of the walkthrough"

    ssrf = exchange(log, "http://localhost:3000/hook")
    assert (ssrf["decision"], ssrf["reason"], ssrf["status"]) == ("deny", "address-blocked", 403)
    assert ssrf["peer_ip"] is None  # nothing was connected to
    assert f"X-Hookwall-Request-Id: {ssrf['request_id']}" in two.split("\n")

    delivered = exchange(log, "http://127.0.0.2:9000/")
    assert (delivered["decision"], delivered["status"]) == ("allow", 200)
    assert delivered["peer_ip"] == "127.0.0.2"
    assert re.search(r'^127\.0\.0\.1 - - \[[^]]+\] "GET / HTTP/1\.1" 200 -$', one, re.M), (
        "the receiver did not log the delivery"
    )

    signed = exchange(log, "http://127.0.0.2:9001/hook")
    assert (signed["decision"], signed["status"], signed["signed"]) == (
        "allow",
        200,
        "standard-webhooks",
    )
    assert signed["key_ids"] and signed["webhook_id"], signed
    verdict = f"POST /hook webhook-id={signed['webhook_id']} signature valid (v1)"
    assert verdict in one.split("\n"), "the receiver did not get a validly signed webhook"

    # The README stops what it started: the shells are the only processes left.
    for terminal in terminals.values():
        try:
            wait_until(functools.partial(alone, terminal), timeout=STEP_TIMEOUT)
        except AssertionError:
            left = [describe(p) for p in terminal.session() if p != terminal.pid and not exited(p)]
            raise AssertionError(f"{terminal.name}: still running: {left}") from None


# -- the comparison itself ----------------------------------------------------------------------


def test_an_output_line_must_be_printed_whole_and_in_order() -> None:
    printed = 'a\nHTTP/1.1 403 Forbidden\n{"ts":"2026-12-02T12:17:11.9Z","x":1,"client":"h:5"}\n'
    assert (
        unmatched(
            'HTTP/1.1 403 Forbidden\n{"ts":"2000-01-01T00:00:00Z",...,"client":"h:7"}', printed
        )
        is None
    )
    assert unmatched("HTTP/1.1 403", printed) == "HTTP/1.1 403"  # a whole line, not a prefix
    assert unmatched('{"ts":...}\nHTTP/1.1 403 Forbidden', printed) == "HTTP/1.1 403 Forbidden"
    assert unmatched("200", "403\n") == "200"


def test_marks_are_read_strictly() -> None:
    readme = "<!-- walkthrough: terminal 1 -->\n```sh\nmake run\n```\n"
    assert walkthrough_steps(readme) == [Step("type", 1, False, "make run\n", 1)]
    assert walkthrough_steps(readme)[0].starts_proxy
    with pytest.raises(AssertionError, match="unknown walkthrough mark"):
        walkthrough_steps("<!-- walkthrough: terminal 3 -->\n```sh\nls\n```\n")
    with pytest.raises(AssertionError, match="followed by a fenced block"):
        walkthrough_steps("<!-- walkthrough: output -->\n\ntext\n")
