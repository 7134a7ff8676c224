"""The README's command examples outside the walkthrough, run as written (issue 17): each test
here reads the blocks README.md marks ``<!-- checked-by: tests/integration/
test_readme_examples.py::test_NAME -->``, in order, runs their commands in bash and compares
what they print with the output block shown after them.

The commands run in a temporary directory that has this session's venv as ``.venv`` (so
``.venv/bin/hookwall`` and, on ``PATH``, ``hookwall`` are the hookwall under test), with
``HOME`` and ``HOOKWALL_DATA_DIR`` there too, and inside ``unshare -n`` where that works (the
session's own namespace otherwise): nothing they do can reach past loopback. An output block
is compared line by line, whole, after the volatile parts (ids, times, ports, key ids) are
normalised; ``...`` in a shown line stands for what it leaves out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

import hookwall
from tests.support.launcher import ProxyLauncher
from tests.support.markdown import Block, fenced_blocks
from tests.support.netns import needs_isolation
from tests.support.paths import REPO
from tests.support.receivers import start_receiver, tls_server_context

README = REPO / "README.md"
THIS = "tests/integration/test_readme_examples.py"
VENV = Path(sys.executable).parent.parent

VOLATILE = [
    (re.compile(r"req_[0-9a-f]{24}"), "req_<id>"),
    (re.compile(r"(msg|evt)_[0-9A-Za-z]{16,}"), r"\1_<id>"),
    (re.compile(r"hmac:[0-9a-f]{12}"), "hmac:<id>"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]{40,}"), "whsec_<secret>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?Z?"), "<time>"),
    (re.compile(r"(127\.0\.0\.\d+):\d{2,5}\b"), r"\1:<port>"),
]


def normalise(line: str) -> str:
    for pattern, replacement in VOLATILE:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def marked(test_name: str) -> list[Block]:
    """The README blocks whose marker names ``test_name`` of this module, in order."""
    wanted = f"{THIS}::{test_name}"
    found = [
        block
        for block in fenced_blocks(README)
        if block.marker
        and block.marker.startswith("checked-by:")
        and wanted in [item.strip() for item in block.marker[len("checked-by:") :].split(",")]
    ]
    assert found, f"README.md marks no block <!-- checked-by: {wanted} -->"
    return found


def isolated() -> list[str]:
    """``unshare -n`` when it works here (root), else nothing: the session's namespace."""
    if shutil.which("unshare") and os.geteuid() == 0:
        return ["unshare", "-n"]
    return []


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / ".venv").symlink_to(VENV)
    return tmp_path


def run_block(
    block: Block, cwd: Path, env: dict[str, str] | None = None, isolate: bool = True
) -> subprocess.CompletedProcess[str]:
    """The block's commands in one bash (stderr merged into stdout, as a terminal shows);
    ``isolate=False`` for commands that reach a proxy of the test (in the session's
    namespace)."""
    env = (env or {}) | {
        "PATH": f"{cwd / '.venv' / 'bin'}:{os.environ['PATH']}",
        "HOME": str(cwd),
        "PYTHONPATH": str(Path(hookwall.__file__).parents[1]),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
    }
    env.setdefault("HOOKWALL_DATA_DIR", str(cwd / "data"))
    return subprocess.run(
        [*(isolated() if isolate else []), "bash", "-c", "exec 2>&1\n" + block.text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_shows(shown: Block, printed: str) -> None:
    """Every line of ``shown`` is a whole line of ``printed``, in order (``...`` inside a
    shown line stands for anything)."""
    lines = [normalise(line) for line in printed.splitlines()]
    at = 0
    for want in (normalise(line) for line in shown.text.splitlines()):
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("...")) + "$")
        hit = next((i for i in range(at, len(lines)) if pattern.match(lines[i])), None)
        assert hit is not None, (
            f"{shown.where}: the README shows\n  {want}\nbut the command printed (from line "
            f"{at + 1}, normalised):\n" + "\n".join(f"  {line}" for line in lines[at:])
        )
        at = hit + 1


def test_the_ca_commands(workdir: Path) -> None:
    """``hookwall ca --path`` prints where the certificate is; ``hookwall ca`` prints it."""
    (commands,) = marked("test_the_ca_commands")
    result = run_block(commands, workdir)
    assert result.returncode == 0, result.stdout
    path = Path(result.stdout.splitlines()[0])
    assert path.parent == workdir / "data" and path.is_file()
    pem = (workdir / "hookwall-ca.pem").read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and pem == path.read_text()
    assert "PRIVATE KEY" not in pem


def test_check_refuses_a_reopened_loopback(workdir: Path) -> None:
    """The policy, the command and the errors of "Exceptions that reopen special-purpose
    space", as shown."""
    policy, command, output = marked("test_check_refuses_a_reopened_loopback")
    name = command.text.split()[-1]  # hookwall check p.yaml
    (workdir / name).write_text(policy.text)
    result = run_block(command, workdir)
    assert result.returncode == 1, result.stdout
    assert_shows(output, result.stdout)
    assert len(result.stdout.splitlines()) == len(output.text.splitlines()), (
        "the README leaves lines out without saying so: " + result.stdout
    )


# -- "Debugging deliveries": hookwall logs and logs show --------------------------------------

WEBHOOK_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = b'{"type": "invoice.paid", "id": "evt_1OqS8hK2eZvKYlo2C0ff1cK9", "data": {}}'


def answer(event: dict[str, Any]) -> bytes:
    """The body the sender got: the receiver's for the 500, hookwall's refusal otherwise."""
    if event["decision"] == "allow":
        return b'{"error": "internal"}'
    refusal = {
        "error": event["reason"],
        "message": event["error"],
        "request_id": event["request_id"],
    }
    return json.dumps(refusal).encode()


def the_three_attempts(data_dir: Path, shown_id: str) -> None:
    """The store the README's story reads: one webhook's three attempts at hooks.acme.com (the
    receiver timed out, then answered 500, then its circuit was open), the last one with the
    request id the README's ``logs show`` names. The rows are built as the proxy builds them
    (the exchange event's fields, headers redacted by the store's own rules)."""
    from hookwall.deliveries.logs import EXCHANGE_FIELDS
    from hookwall.deliveries.store import Store, build_record, store_path

    now = time.time()
    common: dict[str, Any] = dict.fromkeys(EXCHANGE_FIELDS) | {
        "sender": "billing", "client": "10.20.0.7:51234", "method": "POST",
        "url": "https://hooks.acme.com/webhooks/stripe", "host": "hooks.acme.com", "port": 443,
        "rule": "acme", "resolved_ips": ["203.0.113.7"], "webhook_id": WEBHOOK_ID,
        "attempt": 1, "request_bytes": len(BODY),
    }  # fmt: skip
    attempts = [
        (
            now - 1020,
            common
            | {
                "request_id": "req_01a1c83d2f607d01c4a9e2b3",
                "peer_ip": "203.0.113.7",
                "decision": "deny",
                "reason": "response-timeout",
                "status": 504,
                "error": "hooks.acme.com did not answer within 30s",
                "signed": "standard-webhooks",
                "key_ids": ["hmac:3f9a0c1d2e4b"],
                "queue_ms": 0.1,
                "dns_ms": 2.1,
                "connect_ms": 3.4,
                "duration_ms": 30031.2,
            },
        ),
        (
            now - 720,
            common
            | {
                "request_id": "req_01a1c841fe44b2e94f0c17d8",
                "peer_ip": "203.0.113.7",
                "decision": "allow",
                "status": 500,
                "signed": "standard-webhooks",
                "key_ids": ["hmac:3f9a0c1d2e4b"],
                "queue_ms": 0.1,
                "dns_ms": 1.8,
                "connect_ms": 3.1,
                "ttfb_ms": 84.0,
                "duration_ms": 91.5,
            },
        ),
        (
            now - 20,
            common
            | {
                "request_id": shown_id,
                "decision": "deny",
                "reason": "circuit-open",
                "status": 503,
                "signed": False,
                "queue_ms": 0.1,
                "dns_ms": 1.9,
                "duration_ms": 0.4,
                "error": "hooks.acme.com failed 5 times in a row (connect errors, timeouts, "
                "5xx); retry after 30s",
            },
        ),
    ]
    for _, event in attempts:
        event["response_bytes"] = len(answer(event))
    store = Store.open(store_path(data_dir))
    store.insert(
        [
            build_record(
                ts,
                event,
                request_headers=[
                    ("Host", "hooks.acme.com"),
                    ("Content-Type", "application/json"),
                    ("Authorization", "Bearer tok_receiver_0c1d2e"),
                    ("webhook-id", WEBHOOK_ID),
                    ("webhook-signature", "v1,c2lnbmF0dXJl"),
                    ("Content-Length", str(len(BODY))),
                ],
                request_body=BODY,
                response_headers=[("Content-Type", "application/json")],
                response_body=answer(event),
                capture_body=65536,
            )
            for ts, event in attempts
        ]
    )
    store.close()


def test_logs_finds_the_attempts_and_shows_one(workdir: Path) -> None:
    """``hookwall logs --host ... --status 5xx`` and ``hookwall logs show ID`` print what the
    README shows (``logs show`` abridged where the README says so)."""
    logs, table, show, story = marked("test_logs_finds_the_attempts_and_shows_one")
    (shown_id,) = re.findall(r"req_[0-9a-f]{24}", show.text)
    the_three_attempts(workdir / "data", shown_id)
    result = run_block(logs, workdir)
    assert result.returncode == 0, result.stdout
    assert_shows(table, result.stdout)
    assert len(result.stdout.splitlines()) == len(table.text.splitlines()), result.stdout
    result = run_block(show, workdir)
    assert result.returncode == 0, result.stdout
    assert_shows(story, result.stdout)


# -- "Debugging deliveries": hookwall send-test --------------------------------------------

SEND_TEST_POLICY = """\
version: 1
unsafe: true
defaults:
  network: {allow: [127.0.0.2/32]}
  ca_bundle: {ca}
destinations:
  - hosts: [hooks.acme.com]
    name: acme
    signing: {scheme: standard-webhooks, secrets: [env:ACME_WHSEC]}
"""


@needs_isolation  # hooks.acme.com's receiver takes 127.0.0.2:443, in the session's namespace
def test_send_test_delivers_and_says_how(
    start_proxy: ProxyLauncher, receiver_ca: trustme.CA, workdir: Path
) -> None:
    """``hookwall send-test https://hooks.acme.com/x`` through a real proxy, to a receiver that
    answers ``{"ok": true}``: the lines the README shows, signing key id and all."""
    command, output = marked("test_send_test_delivers_and_says_how")
    secret = subprocess.run(
        [str(VENV / "bin" / "hookwall"), "keys", "generate", "--scheme", "standard-webhooks"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = start_receiver("127.0.0.2", 443, tls_server_context(receiver_ca, "hooks.acme.com"))
    try:
        proxy = start_proxy(SEND_TEST_POLICY, names=["hooks.acme.com"], env={"ACME_WHSEC": secret})
        env = {"HOOKWALL_PROXY": proxy.url, "HOOKWALL_DATA_DIR": str(proxy.data_dir)}
        result = run_block(command, workdir, env=env, isolate=False)
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout
    assert_shows(output, result.stdout)
    assert len(result.stdout.splitlines()) == len(output.text.splitlines()), result.stdout
    (seen,) = server.requests
    assert seen.headers["webhook-signature"].startswith("v1,")
