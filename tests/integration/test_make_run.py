"""``make run`` prints only hookwall's output, so ``make run | jq`` reads JSON from line one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.dnsserver import TestDnsServer
from tests.support.paths import REPO

pytestmark = pytest.mark.integration


def test_make_run_prints_only_hookwalls_json_lines(
    dns_server: TestDnsServer, tmp_path: Path
) -> None:
    args = f"--listen 127.0.0.1:0 --admin-listen off --dns-server {dns_server.spec} "
    args += f"--data-dir {tmp_path} --no-store"
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"ARGS={args}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # make and hookwall: one group, stopped together
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert json.loads(first)["event"] == "proxy_started", first
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
