"""Run the real ``hookwall run`` as a subprocess and read its JSON log lines."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HOOKWALL = Path(sys.executable).with_name("hookwall")
Event = dict[str, Any]


def trusting(ca_file: Path) -> ssl.SSLContext:
    """A client TLS context that trusts exactly this CA (hookwall's, or a test receiver's)."""
    return ssl.create_default_context(cafile=str(ca_file))


class ProxyProcess:
    def __init__(
        self,
        policy: Path | None,
        data_dir: Path,
        dns: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        listen: str = "127.0.0.1:0",
        env: dict[str, str] | None = None,
    ) -> None:
        self.policy = policy
        args = [str(HOOKWALL), "run", "--listen", listen, "--data-dir", str(data_dir)]
        if policy is not None:
            args += ["--policy", str(policy)]
        for server in dns:
            args += ["--dns-server", server]
        args += list(extra_args)
        if not any(arg.startswith("--admin-listen") for arg in extra_args):
            args += ["--admin-listen", "127.0.0.1:0"]  # never the fixed default port in tests
        child_env = {
            k: v
            for k, v in os.environ.items()
            if "proxy" not in k.lower() and k != "HOOKWALL_ADMIN_TOKEN"
        }
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env | (env or {}),
        )
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        started = self.wait_for(lambda e: e.get("event") == "proxy_started", timeout=30)
        host, _, port = started["listen"][0].rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.ca_cert = data_dir / "mitmproxy-ca-cert.pem"
        admin = started.get("admin")  # "host:port" of /healthz, /readyz, /metrics; None if off
        with self._cond:  # --workers N: the supervisor serves it for every worker
            supervisor = [e for e in self.events if e.get("event") == "supervisor_started"]
        admin = admin or (supervisor[0].get("admin") if supervisor else None)
        self.admin_url = f"http://{admin}" if admin else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
        with self._cond:
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float = 10, start: int = 0
    ) -> Event:
        """The first event from index ``start`` on that matches; waits for it (no sleeps)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[start:]:
                    if predicate(event):
                        return event
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"hookwall exited ({self.proc.returncode}): {''.join(self.stderr)[-2000:]}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching event within {timeout}s; got {self.events[start:]}"
                    )
                self._cond.wait(min(left, 0.5))

    def exchange(self, request_id: str | None = None, *, start: int = 0, **match: Any) -> Event:
        """Wait for the exchange event with these field values."""

        def ok(e: Event) -> bool:
            if e.get("event") != "exchange":
                return False
            if request_id is not None and e.get("request_id") != request_id:
                return False
            return all(e.get(k) == v for k, v in match.items())

        return self.wait_for(ok, start=start)

    def mark(self) -> int:
        """An index to pass as ``start`` so later waits only see newer events."""
        with self._cond:
            return len(self.events)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
