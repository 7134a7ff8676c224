"""hookwall without its extras: redis (``hookwall[redis]``) and uvloop (``hookwall[uvloop]``)
hidden from a real process (``tests/support/hiding.py``), not mocked.

What must hold: importing hookwall, ``hookwall check`` and ``hookwall run`` on the default
policy never try to import either; a policy with ``limits.backend`` and ``--event-loop
uvloop`` are refused at start, in hookwall's words, with the command that installs the extra.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dnsserver import TestDnsServer
from tests.support.hiding import attempts, hiding_env
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

EXTRAS = ("redis", "uvloop")
DEFAULT_POLICY = REPO / "src" / "hookwall" / "policies" / "default.yaml"
# The modules that are the Redis backend itself: they import redis at the top, and only
# app/limiter.py imports them, once a policy asks for limits.backend.
REDIS_MODULES = {
    "hookwall.limits.fallback",
    "hookwall.limits.redis_backend",
    "hookwall.limits.redis_leases",
    "hookwall.limits.redis_outbox",
    "hookwall.limits.redis_pipeline",
    "hookwall.limits.redis_scripts",
    "hookwall.limits.redis_waiting",
}
REDIS_POLICY = """\
version: 1
limits:
  backend: redis://127.0.0.1:6379/0
destinations:
  - hosts: [hooks.example.com]
"""

IMPORT_EVERY_MODULE = """\
import importlib, json, pkgutil, sys
import hookwall

failed = {}
for info in pkgutil.walk_packages(hookwall.__path__, "hookwall."):
    if info.name == "hookwall.__main__":  # runs the command
        continue
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:
        failed[info.name] = exc.name
print(json.dumps(failed))
"""


def hookwall(
    tmp_path: Path, *args: str, hidden: tuple[str, ...] = EXTRAS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookwall", *args],
        env=hiding_env(tmp_path, hidden),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_shim_really_hides_them(tmp_path: Path) -> None:
    """The test of the tests: with the shim, importing redis fails as if it were absent."""
    result = subprocess.run(
        [sys.executable, "-c", "import redis"],
        env=hiding_env(tmp_path, EXTRAS),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'redis'" in result.stderr
    assert attempts(tmp_path) == ["redis"]


def test_only_the_redis_backend_modules_need_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_MODULE],
        env=hiding_env(tmp_path, EXTRAS),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    failed: dict[str, str] = json.loads(result.stdout)
    assert set(failed) == REDIS_MODULES
    assert set(failed.values()) == {"redis"}, failed  # and never uvloop


def test_check_never_imports_an_extra(tmp_path: Path) -> None:
    (tmp_path / "redis.yaml").write_text(REDIS_POLICY)
    for policy in (DEFAULT_POLICY, tmp_path / "redis.yaml"):
        result = hookwall(tmp_path, "check", str(policy))
        assert result.returncode == 0, result.stderr
        assert "policy OK" in result.stdout
        assert attempts(tmp_path) == []  # a policy is checked without its backend's client


def test_run_on_the_default_policy_never_imports_an_extra(
    tmp_path: Path, dns_server: TestDnsServer
) -> None:
    args = [sys.executable, "-m", "hookwall", "run", "--listen", "127.0.0.1:0"]
    args += ["--admin-listen", "off", "--data-dir", str(tmp_path / "data")]
    args += ["--dns-server", dns_server.spec]
    proc = subprocess.Popen(
        args,
        env=hiding_env(tmp_path, EXTRAS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        events = []
        for line in proc.stdout:  # until the proxy says it listens (or exits)
            events.append(json.loads(line))
            if events[-1]["event"] == "proxy_started":
                break
        assert events and events[-1]["event"] == "proxy_started", events
        assert events[-1]["event_loop"] == "asyncio"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert attempts(tmp_path) == []


def test_a_redis_backend_without_redis_is_refused_at_start(tmp_path: Path) -> None:
    policy = tmp_path / "redis.yaml"
    policy.write_text(REDIS_POLICY)
    for workers in ("1", "2"):  # refused before the supervisor starts any worker
        result = hookwall(
            tmp_path, "run", "--policy", str(policy), "--listen", "127.0.0.1:0",
            "--admin-listen", "off", "--data-dir", str(tmp_path / "data"),
            "--workers", workers,
        )  # fmt: skip
        assert result.returncode == 1
        assert "limits.backend needs the redis package" in result.stderr
        assert "install hookwall[redis]: pip install 'hookwall[redis]'" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""  # not started: no proxy_started, no worker events
        assert attempts(tmp_path) == ["redis"]  # tried once, then refused


def test_uvloop_without_uvloop_is_refused_at_start(tmp_path: Path) -> None:
    for workers in ("1", "2"):
        result = hookwall(
            tmp_path, "run", "--event-loop", "uvloop", "--listen", "127.0.0.1:0",
            "--admin-listen", "off", "--data-dir", str(tmp_path / "data"),
            "--workers", workers,
        )  # fmt: skip
        assert result.returncode == 1
        assert "--event-loop uvloop needs uvloop" in result.stderr
        assert "install hookwall[uvloop]: pip install 'hookwall[uvloop]'" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
        assert attempts(tmp_path) == ["uvloop"]  # asked for, so tried once: and only that
