"""``hookwall run --log-format console``: a person watching reads aligned ``key=value`` lines
for each delivery, the ``--log-file`` beside them stays JSON, and under ``--workers`` the
workers' lines come out in the supervisor's format. (Piped without the flag the lines are
JSON: every other integration test reads them so, and test_make_run.py checks ``make run``.)"""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import pytest
import requests

from tests.integration.test_logs_terminal import Terminal
from tests.support.dnsserver import TestDnsServer
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import HOOKWALL, ProxyProcess, environment
from tests.support.receivers import Receiver

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
"""

# 2026-12-02T14:30:00.123456Z [info     ] exchange    request_id=req_... method=POST ...
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours, on a terminal
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[(\w+)\s*\] (\w+)\s+(.*)$")


def console_lines(proc: ProxyProcess, event: str, count: int = 1) -> list[str]:
    """The console lines of ``event`` (the launcher keeps lines it cannot parse as JSON as
    "unparsed" events), once there are ``count``."""

    def matching(e: dict[str, object]) -> bool:
        match = LINE.match(str(e.get("line", "")))
        return e.get("event") == "unparsed" and match is not None and match[2] == event

    found = proc.wait_count(matching, count, timeout=30)
    return [str(e["line"]).rstrip("\n") for e in found]


def field(line: str, name: str) -> str:
    match = re.search(rf"(?:^| ){name}=('[^']*'|\[[^\]]*\]|\S+)", line)
    assert match, f"no {name}= in {line!r}"
    return match[1]


def ready(proc: ProxyProcess, started: str) -> None:
    """What ``wait_started`` learns from the JSON line, read from the console one."""
    listen = field(started, "listen")  # ['127.0.0.1:PORT']
    host, _, port = listen.strip("[]'").rpartition(":")
    proc.host, proc.port = host, int(port)


def test_a_delivery_as_a_person_reads_it(
    start_proxy: ProxyLauncher, receiver: Receiver, tmp_path: Path
) -> None:
    log_file = tmp_path / "hookwall.jsonl"
    proc = start_proxy.spawn(
        POLICY,
        names=["hooks.test"],
        args=["--log-format", "console", "--log-file", str(log_file), "--admin-listen", "off"],
    )
    (started,) = console_lines(proc, "proxy_started")
    ready(proc, started)
    url = f"http://hooks.test:{receiver.port}/hook?\x1b=1"
    answer = requests.post(url, data=b'{"type":"ping"}', proxies={"http": proc.url}, timeout=20)
    assert answer.status_code == 200
    (line,) = console_lines(proc, "exchange")
    level, event, rest = LINE.match(line).groups()  # type: ignore[union-attr]
    assert (level, event) == ("info", "exchange")
    assert field(rest, "request_id") == answer.headers["X-Hookwall-Request-Id"]
    assert field(rest, "method") == "POST" and field(rest, "status") == "200"
    assert field(rest, "host") == "hooks.test" and field(rest, "decision") == "allow"
    assert "\x1b" not in line and "{" not in line.split("exchange", 1)[0]
    assert not [e for e in proc.events if e.get("event") != "unparsed"]  # no JSON on stdout
    # The file is for machines: the same exchange, as JSON.
    logged = [json.loads(text) for text in log_file.read_text().splitlines()]
    exchanges = [e for e in logged if e["event"] == "exchange"]
    assert [e["request_id"] for e in exchanges] == [field(rest, "request_id")]
    assert exchanges[0]["status"] == 200


def test_an_escape_sequence_from_a_sender_is_shown_not_run(
    start_proxy: ProxyLauncher, receiver: Receiver
) -> None:
    """A raw ESC and BEL in the request line: hookwall refuses it (bad-framing), and its
    console lines (the exchange, the library's warning) show them as the characters \\x1b
    and \\x07, never the bytes."""
    proc = start_proxy.spawn(
        POLICY, names=["hooks.test"], args=["--log-format", "console", "--admin-listen", "off"]
    )
    (started,) = console_lines(proc, "proxy_started")
    ready(proc, started)
    target = f"http://hooks.test:{receiver.port}/a\x1b[2J\x1b]0;owned\x07b"
    head = f"POST {target} HTTP/1.1\r\nHost: hooks.test:{receiver.port}\r\nContent-Length: 2\r\n"
    with socket.create_connection((proc.host, proc.port), timeout=10) as conn:
        conn.sendall(f"{head}\r\n{{}}".encode())
        assert conn.recv(65536).startswith(b"HTTP/1.1 400 ")
    (line,) = console_lines(proc, "exchange")
    assert field(line, "reason") == "bad-framing"
    assert field(line, "url") == f"http://hooks.test:{receiver.port}/a\\x1b[2J\\x1b]0;owned\\x07b"
    printed = "".join(str(e.get("line")) for e in proc.events)
    assert "\x1b" not in printed and "\x07" not in printed


def test_the_workers_write_the_supervisors_format(
    start_proxy: ProxyLauncher, receiver: Receiver
) -> None:
    proc = start_proxy.spawn(
        POLICY, names=["hooks.test"], args=["--log-format", "console"], workers=2
    )
    started = console_lines(proc, "proxy_started", 2)
    assert sorted(field(line, "worker") for line in started) == ["1", "2"]
    (supervisor,) = console_lines(proc, "supervisor_started")
    assert field(supervisor, "workers") == "2"
    ready(proc, started[0])
    answer = requests.post(
        f"http://hooks.test:{receiver.port}/x", data=b"{}", proxies={"http": proc.url}, timeout=20
    )
    assert answer.status_code == 200
    (line,) = console_lines(proc, "exchange")
    assert field(line, "worker") in ("1", "2") and field(line, "status") == "200"
    assert not [e for e in proc.events if e.get("event") != "unparsed"]


def test_auto_is_console_on_a_terminal(dns_server: TestDnsServer, tmp_path: Path) -> None:
    """Without --log-format, on a terminal: console lines (piped, every other test reads
    JSON). On a pseudo-terminal, as ``hookwall run`` in a person's shell."""
    args = [str(HOOKWALL), "run", "--listen", "127.0.0.1:0", "--admin-listen", "off"]
    args += ["--dns-server", dns_server.spec, "--data-dir", str(tmp_path), "--no-store"]
    term = Terminal(args, environment())
    try:
        line = SGR.sub("", term.line(timeout=30))
        match = LINE.match(line)
        assert match is not None and match[2] == "proxy_started", line
        assert field(match[3], "listen").startswith("['127.0.0.1:")
        term.proc.send_signal(signal.SIGTERM)
        assert term.proc.wait(timeout=30) == 0
    finally:
        term.close()
