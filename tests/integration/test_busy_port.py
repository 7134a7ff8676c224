"""A port already taken, through the real CLI: hookwall says which address and which of its
own flags to change (never mitmproxy's ``--mode regular@PORT``), exits 1, no traceback; for
the proxy's and the admin endpoint's port, one process and ``--workers 2``."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.proxyproc import HOOKWALL

pytestmark = pytest.mark.integration


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield int(sock.getsockname()[1])


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(HOOKWALL), "run", "--data-dir", str(tmp_path / "data"), "--quiet"]
    command += ["--dns-server", "127.0.0.1:9", *args]  # never asked: nothing is sent
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one", "workers"])
def test_a_taken_proxy_port_names_the_listen_flag(
    tmp_path: Path, taken: int, workers: list[str]
) -> None:
    result = run(tmp_path, "--listen", f"127.0.0.1:{taken}", "--admin-listen", "off", *workers)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"hookwall: cannot listen for senders on 127.0.0.1:{taken}: the port is already in use "
        "(another hookwall, or another program); pass --listen HOST:PORT with a free port "
        "(port 0 picks one), or stop what holds it"
    )


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one", "workers"])
def test_a_taken_admin_port_names_the_admin_flag(
    tmp_path: Path, taken: int, workers: list[str]
) -> None:
    result = run(
        tmp_path, "--listen", "127.0.0.1:0", "--admin-listen", f"127.0.0.1:{taken}", *workers
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"hookwall: cannot listen for the admin endpoint on 127.0.0.1:{taken}: the port is "
        "already in use (another hookwall, or another program); pass --admin-listen HOST:PORT "
        "(or --admin-listen off) with a free port (port 0 picks one), or stop what holds it"
    )


def test_the_log_line_of_a_taken_port_says_it_in_hookwalls_flags(
    tmp_path: Path, taken: int
) -> None:
    command = [str(HOOKWALL), "run", "--data-dir", str(tmp_path / "data"), "--admin-listen"]
    command += ["off", "--dns-server", "127.0.0.1:9", "--listen", f"127.0.0.1:{taken}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "--listen HOST:PORT" in result.stdout and "--mode" not in result.stdout
    assert "Traceback" not in result.stderr + result.stdout
