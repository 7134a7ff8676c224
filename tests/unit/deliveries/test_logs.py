"""The JSON log line: one object per line, identity first, secret-named fields redacted."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from hookwall.deliveries import logs

Lines = Callable[[], tuple[list[str], list[str]]]  # what was written to stdout, to the file


@pytest.fixture
def lines(tmp_path: Path) -> Iterator[Lines]:
    out = io.StringIO()
    log_file = tmp_path / "hookwall.log"
    logs.configure(stdout=out, log_file=str(log_file))
    yield lambda: (out.getvalue().splitlines(), log_file.read_text().splitlines())
    structlog.reset_defaults()


def test_one_json_object_per_line_identity_first(lines: Lines) -> None:
    logs.get_logger().info("exchange", request_id="req_1", status=200, url="http://a/é")
    stdout, file = lines()
    assert stdout == file and len(stdout) == 1
    event = json.loads(stdout[0])
    assert list(event)[:3] == ["ts", "level", "event"]
    assert event["event"] == "exchange" and event["level"] == "info"
    assert event["url"] == "http://a/é" and event["status"] == 200


@pytest.mark.parametrize(
    "key",
    ["authorization", "Proxy-Authorization", "api_token", "client_secret", "PASSWORD", "tokens"],
)
def test_secret_named_fields_never_reach_the_log(lines: Lines, key: str) -> None:
    for _ in range(2):  # the verdict on a name is cached: the second line must agree
        logs.get_logger().warning("oops", **{key: "hunter2", "host": "example.com"})
    stdout, _ = lines()
    for line in stdout:
        assert "hunter2" not in line
        event = json.loads(line)
        assert event[key] == "[redacted]" and event["host"] == "example.com"


def test_values_orjson_refuses_still_make_a_line(lines: Lines) -> None:
    """orjson writes the lines; what it cannot encode falls back to json, never raises."""
    logs.get_logger().info("odd", big=2**70, keyed={1: "one"}, obj=ValueError("x"))
    stdout, _ = lines()
    event = json.loads(stdout[0])
    assert event["big"] == 2**70 and event["keyed"] == {"1": "one"}
    assert "ValueError" in event["obj"]


def test_urls_in_any_line_lose_their_credentials(lines: Lines) -> None:
    """Not only the exchange event: a library warning quoting a URL is redacted too."""
    logs.get_logger().warning(
        "library_log",
        logger="mitmproxy",
        message="error fetching https://bob:pw_1@h.example/x?sig=sig_2&page=3: reset",
        target="https://h.example/cb#access_token=tok_3",
    )
    stdout, _ = lines()
    assert not any(secret in stdout[0] for secret in ("pw_1", "sig_2", "tok_3"))
    event = json.loads(stdout[0])
    assert event["message"].endswith("?sig=[redacted]&page=3: reset")
    assert event["target"] == "https://h.example/cb#access_token=[redacted]"
