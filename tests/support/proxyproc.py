"""Run the real ``hookwall run`` as a process of its own and read its JSON log lines.

The process is exec'd, or, once a fork server is in use (``use_fork_server``: the integration
tests' session does it), forked from one that has hookwall imported already
(``tests.support.forkserver``). Every wait here is on something the proxy says or answers (a
log line, ``/readyz``) and has a deadline; none is a sleep that hopes the proxy got there.
"""

from __future__ import annotations

import http.client
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
from typing import IO, Any, Protocol

from tests.support.forkserver import ForkServer

HOOKWALL = Path(sys.executable).with_name("hookwall")
Event = dict[str, Any]
START_TIMEOUT = 30.0  # seconds a start may take (a loaded CI machine, two workers)


class Child(Protocol):
    """What a proxy's process offers: a ``subprocess.Popen``, or a fork server's child."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdout(self) -> IO[str] | None: ...
    @property
    def stderr(self) -> IO[str] | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


_fork_server: ForkServer | None = None


def use_fork_server(server: ForkServer | None) -> None:
    """Start proxies from this fork server from now on (None: exec them again)."""
    global _fork_server
    _fork_server = server


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """A proxy's environment: ours without proxy settings or an admin token, plus ``env``."""
    ours = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and k != "HOOKWALL_ADMIN_TOKEN"
    }
    return ours | (env or {})


def start(args: list[str], env: dict[str, str]) -> Child:
    """``hookwall run ...`` with its output on pipes: forked when a fork server is in use."""
    if _fork_server is not None:
        return _fork_server.spawn(args, env)
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def trusting(ca_file: Path) -> ssl.SSLContext:
    """A client TLS context that trusts exactly this CA (hookwall's, or a test receiver's)."""
    return ssl.create_default_context(cafile=str(ca_file))


class ProxyProcess:
    """One ``hookwall run`` (with ``--workers N``, its supervisor), started and waited for.

    The constructor returns once the proxy logged ``proxy_started``, so its port is bound
    (with ``wait=False`` at once: call ``wait_started`` before using it, e.g. after starting
    the others of a fleet). ``events`` fills with every line the proxy writes, read by a
    thread per pipe.
    """

    host: str
    port: int
    ca_cert: Path
    admin_url: str | None

    def __init__(
        self,
        policy: Path | None,
        data_dir: Path,
        dns: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        listen: str = "127.0.0.1:0",
        env: dict[str, str] | None = None,
        *,
        wait: bool = True,
    ) -> None:
        self.policy = policy
        self.data_dir = data_dir
        args = [str(HOOKWALL), "run", "--listen", listen, "--data-dir", str(data_dir)]
        if policy is not None:
            args += ["--policy", str(policy)]
        for server in dns:
            args += ["--dns-server", server]
        args += list(extra_args)
        if not any(arg.startswith("--admin-listen") for arg in extra_args):
            args += ["--admin-listen", "127.0.0.1:0"]  # never the fixed default port in tests
        self.proc = start(args, environment(env))
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self._terminated = False
        self._cond = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if wait:
            self.wait_started()

    def wait_started(self) -> None:
        """Wait for ``proxy_started``; learn the addresses it names."""
        started = self.wait_for(lambda e: e.get("event") == "proxy_started", START_TIMEOUT)
        host, _, port = started["listen"][0].rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.ca_cert = self.data_dir / "mitmproxy-ca-cert.pem"
        admin = started.get("admin")  # "host:port" of /healthz, /readyz, /metrics; None if off
        supervisor = self.events_named("supervisor_started")  # --workers N: it serves for all
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

    def wait_until(
        self, condition: Callable[[], bool], timeout: float = 10, what: str = "condition"
    ) -> None:
        """Wait until ``condition()`` holds, asked again at every new log line (no polling)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"hookwall exited ({self.proc.returncode}) before {what}: "
                        f"{''.join(self.stderr)[-2000:]}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what} not reached within {timeout}s")
                self._cond.wait(min(left, 0.5))

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float = 10, start: int = 0
    ) -> Event:
        """The first event from index ``start`` on that matches; waits for it (no sleeps)."""
        found: list[Event] = []

        def seen() -> bool:
            found[:] = [e for e in self.events[start:] if predicate(e)][:1]
            return bool(found)

        try:
            self.wait_until(seen, timeout, "a matching event")
        except AssertionError as exc:
            if self.proc.poll() is not None:
                raise
            raise AssertionError(f"{exc}; got {self.events[start:]}") from None
        return found[0]

    def wait_count(
        self, predicate: Callable[[Event], bool], count: int, timeout: float = 10, start: int = 0
    ) -> list[Event]:
        """Every event from ``start`` on that matches, once there are at least ``count``: an
        answer can reach a test before the log lines written ahead of it are read."""
        found: list[Event] = []

        def enough() -> bool:
            found[:] = [e for e in self.events[start:] if predicate(e)]
            return len(found) >= count

        self.wait_until(enough, timeout, f"{count} matching events")
        return list(found)

    def events_named(self, name: str, start: int = 0) -> list[Event]:
        with self._cond:
            return [e for e in self.events[start:] if e.get("event") == name]

    def wait_ready(self, workers: int = 1, timeout: float = START_TIMEOUT) -> None:
        """Every worker has started, and ``/readyz`` (when the admin listener is on) says so."""
        self.wait_until(
            lambda: len(self.events_named("proxy_started")) >= workers,
            timeout,
            f"{workers} workers started",
        )
        if self.admin_url is None:
            return
        deadline = time.monotonic() + timeout
        while (answer := self.readyz()) != 200:  # the supervisor asks each worker in turn
            assert self.proc.poll() is None, f"hookwall exited: {''.join(self.stderr)[-2000:]}"
            assert time.monotonic() < deadline, f"/readyz still {answer} after {timeout}s"
            time.sleep(0.02)

    def readyz(self) -> int:
        """The status of ``/readyz`` (0: no answer), asked directly, never through a proxy."""
        assert self.admin_url is not None
        host, _, port = self.admin_url.removeprefix("http://").rpartition(":")
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=5)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status
        except OSError:
            return 0
        finally:
            conn.close()

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

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM: drain, then exit) without waiting for it. Once:
        a second SIGTERM means "stop now" to hookwall, and kills it if it comes too late."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """Stop gracefully (killed after 15 s) and return the exit code."""
        self.terminate()
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
