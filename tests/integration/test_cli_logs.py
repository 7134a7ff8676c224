"""`hookwall logs`, `logs show`, `replay` and `send-test` as a user meets them, on a store
filled directly (the proxy end to end is in test_proxy_deliveries.py)."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from hookwall.cli.main import main
from hookwall.cli.replay import replay_headers
from hookwall.cli.send_test import sample_webhook
from hookwall.deliveries.logs import EXCHANGE_FIELDS
from hookwall.deliveries.store import REDACTED, Record, Store, build_record, store_path

HOOKWALL = Path(sys.executable).with_name("hookwall")


def event(n: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(EXCHANGE_FIELDS)
    base |= {
        "request_id": f"req_{n:020x}",
        "client": "127.0.0.1:50000",
        "method": "POST",
        "url": "https://hooks.acme.com/hook",
        "host": "hooks.acme.com",
        "port": 443,
        "rule": "acme",
        "resolved_ips": ["203.0.113.7"],
        "peer_ip": "203.0.113.7",
        "decision": "allow",
        "status": 200,
        "signed": "standard-webhooks",
        "key_ids": ["hmac:3f9a0c1d2e4b"],
        "webhook_id": "msg_invoice_paid",
        "attempt": 1,
        "queue_ms": 0.1,
        "connect_ms": 3.0,
        "ttfb_ms": 20.0,
        "duration_ms": 25.0,
        "request_bytes": 40,
        "response_bytes": 12,
    }
    return base | fields


BODY = b'{"type": "invoice.paid", "id": "evt_1"}'


def add(data_dir: Path, n: int, age: float = 0.0, body: bytes | None = BODY, cap: int = 65536,
        **fields: Any) -> None:  # fmt: skip
    store = Store.open(store_path(data_dir))
    store.insert(
        [
            build_record(
                time.time() - age,
                event(n, **fields),
                request_headers=[
                    ("Host", "hooks.acme.com"),
                    ("Content-Type", "application/json"),
                    ("Authorization", "Bearer tok_receiver"),
                    ("webhook-id", "msg_invoice_paid"),
                    ("webhook-timestamp", "1700000000"),
                    ("webhook-signature", "v1,c2lnbmF0dXJl"),
                    ("Content-Length", str(len(body or b""))),
                ],
                request_body=body,
                response_headers=[("Content-Type", "application/json")],
                response_body=b'{"ok": true}',
                capture_body=cap,
            )
        ]
    )
    store.close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Six exchanges: an event's three attempts (5xx, denied, 200), and others."""
    add(tmp_path, 1, age=26 * 3600, host="old.acme.com", url="https://old.acme.com/hook")
    add(tmp_path, 2, age=3 * 3600, status=500, ttfb_ms=None)
    add(tmp_path, 3, age=2 * 3600, status=503, decision="deny", reason="circuit-open",
        error="hooks.acme.com failed 5 times in a row; retry after 30s", signed=False)  # fmt: skip
    add(tmp_path, 4, age=3600, status=200)
    add(tmp_path, 5, age=60, host="other.example", url="http://other.example/x", port=80,
        webhook_id=None, status=403, decision="deny", reason="address-blocked",
        signed=False)  # fmt: skip
    add(tmp_path, 6, age=30, host="api.stripe.example", url="https://api.stripe.example/stripe/v1",
        webhook_id="evt_9", sender="billing")  # fmt: skip
    return tmp_path


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def json_ids(out: str) -> list[int]:
    return [int(json.loads(line)["request_id"][4:], 16) for line in out.splitlines()]


# -- hookwall logs --------------------------------------------------------------------------
def test_the_table_shows_a_real_request_id_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The id column is what operators copy into `logs show`: it must never be cut."""
    from hookwall.core import ids

    request_id = ids.request_id()
    add(tmp_path, 1, request_id=request_id)
    code, out, _ = run_main(capsys, "logs", "--data-dir", str(tmp_path))
    assert code == 0
    assert request_id in out.splitlines()[1] and "…" not in out


def test_the_operators_story(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        capsys,
        "logs", "--data-dir", str(data), "--host", "hooks.acme.com", "--since", "1d",
        "--status", "5xx",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "REQUEST"]
    assert len(lines) == 3  # the 500 and the 503 (circuit-open); not the 200, not yesterday's
    assert "req_00000000000000000002" in lines[1] and " 500 " in lines[1]
    assert "req_00000000000000000003" in lines[2] and "circuit-open" in lines[2]
    assert "\x1b[" not in out  # no colour when not on a terminal


def test_json_lines_have_the_log_line_shape(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "logs", "--data-dir", str(data), "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["request_id"][-1] for line in lines] == list("123456")  # oldest first
    first = lines[0]
    assert list(first)[:3] == ["ts", "event", "request_id"]
    assert first["event"] == "exchange" and first["ts"].endswith("Z")
    assert set(EXCHANGE_FIELDS) <= set(first)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--limit", "2"], [5, 6]),
        (["--host", "*.acme.com"], [1, 2, 3, 4]),
        (["--status", "denied"], [3, 5]),
        (["--status", "4xx,5xx"], [2, 3, 5]),
        (["--status", "200", "--since", "2h"], [4, 6]),
        (["--reason", "circuit-open"], [3]),
        (["--webhook-id", "msg_invoice_paid", "--since", "1d"], [2, 3, 4]),
        (["--sender", "billing"], [6]),
        (["--path", "/stripe/*"], [6]),
        (["--until", "1h"], [1, 2, 3, 4]),
        (["--host", "nothing.example"], []),
    ],
)
def test_filters(
    data: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[int]
) -> None:
    code, out, _ = run_main(capsys, "logs", "--data-dir", str(data), "--json", *args)
    assert code == 0
    assert json_ids(out) == expected


def test_colour_on_request(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_main(capsys, "logs", "--data-dir", str(data), "--color", "always")
    assert "\x1b[31m" in out  # denials and 5xx in red


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "6xx"], "invalid status"),
        (["--since", "yesterday"], "invalid time"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_bad_filters_exit_2(
    data: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_main(capsys, "logs", "--data-dir", str(data), *args)
    assert code == 2 and message in err


def test_without_a_store_the_message_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(capsys, "logs", "--data-dir", str(tmp_path / "none"))
    assert code == 1
    assert "no delivery store at" in err and "--data-dir" in err


def test_a_json_log_file_works_too(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Operators who only kept stdout: the same filters over the JSON lines."""
    _, out, _ = run_main(capsys, "logs", "--data-dir", str(data), "--json")
    log = tmp_path / "hookwall.jsonl"
    log.write_text(
        '{"ts": "2026-01-01T00:00:00Z", "level": "info", "event": "proxy_started"}\n'
        "not json at all\n"
        + "".join(
            json.dumps({"level": "info", **json.loads(line)}) + "\n" for line in out.splitlines()
        )
    )
    for args, expected in (
        ([], [1, 2, 3, 4, 5, 6]),
        (["--host", "hooks.acme.com", "--since", "1d", "--status", "5xx"], [2, 3]),
        (["--limit", "1"], [6]),
    ):
        code, got, _ = run_main(capsys, "logs", "--file", str(log), "--json", *args)
        assert code == 0 and json_ids(got) == expected
    code, table, _ = run_main(capsys, "logs", "--file", str(log), "--reason", "circuit-open")
    assert code == 0 and "circuit-open" in table


def test_rows_and_lines_an_older_hookwall_wrote_in_clear_are_shown_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the redaction rules grew, ?token= and X-Functions-Key were stored in clear; a
    store or log file from then is redacted when it is read."""
    url = "https://hooks.acme.com/hook?token=old_tok_123&event=paid"
    clear = Record(
        ts=time.time(),
        event=event(1, url=url),
        request_headers=[("X-Functions-Key", "old_funckey_456"), ("X-Request-Id", "r-1")],
        request_body=BODY,
    )
    store = Store.open(store_path(tmp_path))
    store.insert([clear])  # as written then: no build_record, no redaction
    store.close()
    log = tmp_path / "old.jsonl"
    log.write_text(json.dumps({"ts": "2026-01-01T00:00:00Z", "event": "exchange", "url": url}))
    outputs = [
        run_main(capsys, "logs", "--data-dir", str(tmp_path), "--json")[1],
        run_main(capsys, "logs", "show", "req_" + f"{1:020x}", "--data-dir", str(tmp_path))[1],
        run_main(capsys, "logs", "show", "1", "--json", "--data-dir", str(tmp_path))[1],
        run_main(capsys, "logs", "--file", str(log), "--json")[1],
    ]
    for out in outputs:
        assert "old_tok_123" not in out and "old_funckey_456" not in out
        assert "token=" in out and "event=paid" in out
    assert "r-1" in outputs[1] and "X-Functions-Key" in outputs[1]


class Lines:
    """Lines of a running process's stdout, read on a thread (no sleeps to wait for them)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.queue.put(line)

    def next(self) -> str:
        return self.queue.get(timeout=15)


def test_follow_streams_new_exchanges(data: Path) -> None:
    proc = subprocess.Popen(
        [str(HOOKWALL), "logs", "--data-dir", str(data), "--follow", "--json", "--limit", "1",
         "--status", "5xx,denied", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        lines = Lines(proc)
        assert json.loads(lines.next())["request_id"].endswith("5")  # the newest match
        add(data, 7, status=200)  # does not match
        add(data, 8, status=502, decision="deny", reason="upstream-error")
        add(data, 9, status=504, decision="deny", reason="response-timeout")
        assert json.loads(lines.next())["reason"] == "upstream-error"
        assert json.loads(lines.next())["reason"] == "response-timeout"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_follow_a_log_file(tmp_path: Path) -> None:
    log = tmp_path / "hookwall.jsonl"
    log.write_text("")
    proc = subprocess.Popen(
        [str(HOOKWALL), "logs", "--file", str(log), "--follow", "--interval", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(proc)
        assert lines.next().startswith("TIME (UTC)")
        line = {"ts": "2026-11-28T22:15:40.961406Z", "event": "exchange"} | event(3)
        with log.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        assert "req_00000000000000000003" in lines.next()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- hookwall logs show --------------------------------------------------------------------
def test_show_tells_the_whole_story(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "logs", "show", "req_00000000000000000003", "--data-dir",
                            str(data))  # fmt: skip
    assert code == 0
    for text in (
        "exchange req_00000000000000000003",
        "POST https://hooks.acme.com/hook",
        "rule: acme",
        "DENIED circuit-open (503)",
        "explanation  hooks.acme.com failed 5 times in a row; retry after 30s",
        "webhook id   msg_invoice_paid",
        "connect 3.0 ms",
        "Authorization: [redacted]",
        "webhook-signature: [redacted]",
        '"type": "invoice.paid"',  # the captured body, pretty-printed
        "attempts of webhook msg_invoice_paid (4)",
    ):
        assert text in out, text
    attempts = out.split("attempts of webhook")[1].splitlines()[2:]
    assert [line.split()[2][-1] for line in attempts] == ["1", "2", "3", "4"]
    assert "← this one" in attempts[2]
    assert "tok_receiver" not in out


def test_show_json_and_by_row_number(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "logs", "--data-dir", str(data), "show", "4", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["request_id"] == "req_00000000000000000004"
    assert doc["request"]["body"] == {
        "captured_bytes": len(BODY),
        "truncated": False,
        "text": json.dumps(json.loads(BODY), indent=2),
    }
    assert ["Authorization", REDACTED] in doc["request"]["headers"]
    assert [a["request_id"][-1] for a in doc["attempts"]] == ["1", "2", "3", "4"]


def test_show_unknown_id(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "logs", "show", "req_missing", "--data-dir", str(data))
    assert code == 1 and "no exchange 'req_missing'" in err


# -- hookwall replay / send-test (what can be checked without a proxy) -----------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"body": None, "cap": 0}, "was not captured"),
        ({"body": b"x" * 100, "cap": 10, "request_bytes": 100},
         "only the first 10 of 100 body bytes were captured"),
        ({"method": "CONNECT", "body": None}, "CONNECT tunnel"),
    ],
)  # fmt: skip
def test_replay_refuses_what_it_cannot_send_faithfully(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, Any], message: str
) -> None:
    add(tmp_path, 1, **fields)
    proxy = f"http://127.0.0.1:{closed_port()}"
    code, out, err = run_main(
        capsys, "replay", "req_00000000000000000001", "--data-dir", str(tmp_path), "--proxy", proxy
    )
    assert code == 1
    assert message in err and out == ""


def test_replay_says_when_the_proxy_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(tmp_path, 1, url="http://hooks.acme.com/hook")
    proxy = f"http://127.0.0.1:{closed_port()}"
    code, _, err = run_main(
        capsys, "replay", "req_00000000000000000001", "--data-dir", str(tmp_path), "--proxy", proxy
    )
    assert code == 1 and f"could not send through {proxy}" in err
    code, _, err = run_main(capsys, "send-test", "http://hooks.acme.com/", "--proxy", proxy)
    assert code == 1 and "is `hookwall run` up?" in err


def test_replay_headers_drop_redacted_and_stale_values() -> None:
    kept, withheld = replay_headers(
        [
            ("Host", "a"),
            ("Content-Length", "3"),
            ("Content-Type", "application/json"),
            ("Authorization", REDACTED),
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1"),
            ("webhook-signature", REDACTED),
            ("X-Hookwall-Upgrade", "https"),
        ]
    )
    assert kept == [("Content-Type", "application/json"), ("webhook-id", "msg_1")]
    assert withheld == ["Authorization"]


def test_sample_webhook_shape() -> None:
    doc = json.loads(sample_webhook("invoice.paid", now=1_800_000_000))
    assert doc["type"] == "invoice.paid"
    assert doc["id"].startswith("evt_")
    assert doc["timestamp"] == "2027-01-15T08:00:00Z"
    assert isinstance(doc["data"], dict)


def test_sender_text_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Headers, URLs and bodies come from senders and receivers: escapes are shown, not run."""
    add(
        tmp_path,
        1,
        url="http://hooks.acme.com/\x1b[2Jx",
        error="bad\x9b31m",
        body=b"\x1b]0;owned\x07",
    )
    code, out, _ = run_main(capsys, "logs", "--data-dir", str(tmp_path))
    assert code == 0 and "\x1b" not in out
    code, out, _ = run_main(capsys, "logs", "show", "1", "--data-dir", str(tmp_path))
    assert code == 0
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out
    assert "\\x1b[2Jx" in out
    code, out, _ = run_main(capsys, "logs", "show", "1", "--json", "--data-dir", str(tmp_path))
    assert "\x1b" not in out and "\x9b" not in out
