"""Start ``hookwall run`` processes in a fifth of the time: fork them from one interpreter that
has already imported hookwall and mitmproxy.

An exec'd ``hookwall run`` spends about 0.7 s of CPU importing mitmproxy and hookwall before
it reads its arguments, and the integration tests start some sixty of them: most of the
suite's CPU. The fork server does those imports once; for each start it forks a child that
runs ``hookwall.cli.main.main(argv)`` with the caller's environment and stdio, then exits
through ``sys.exit`` like the ``hookwall`` script does (``sys.exit(main())``, nothing else).
The child is a process of its own: own pid, signals, pipes, exit code, ``/proc`` entry; only
the imports are shared. The entry point itself stays covered by the tests that exec the
binary (``test_cli``, ``test_busy_port``, the refusals in ``test_access``...), and
``HOOKWALL_TEST_FORK=0`` execs every proxy instead, for a run that trusts nothing.

The protocol, one Unix-socket connection per child: the caller sends its argv, environment
and working directory as JSON with the child's stdin, stdout and stderr as file descriptors;
the server answers the child's pid, and later its wait status, then closes the connection.
The server exits when its stdin (a pipe from the caller) closes.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# What ``hookwall run`` imports before it serves (cli/run.py imports most of it lazily).
WARM = (
    "hookwall.cli.main",
    "hookwall.app.master",
    "hookwall.app.operations",
    "hookwall.app.workers",
    "hookwall.flow.runtime",
)
MAX_REQUEST = 1 << 16  # bytes read at a time: the request is argv and environment as JSON
READY = b"ready\n"


# -- the caller's side -------------------------------------------------------------------------


class ForkedProcess:
    """What the tests use of ``subprocess.Popen``, for a child of the fork server."""

    def __init__(self, args: list[str], conn: socket.socket, pid: int, out: int, err: int):
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self.stdout: IO[str] = open(out, encoding="utf-8", errors="replace")  # noqa: SIM115
        self.stderr: IO[str] = open(err, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._conn = conn
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self._wait(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._wait(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def _wait(self, timeout: float | None) -> int | None:
        if self.returncode is None and select.select([self._conn], [], [], timeout)[0]:
            with self._lock:  # two threads may have seen the status arrive
                if self.returncode is None:
                    status = self._conn.makefile("rb").readline()
                    self._conn.close()
                    self.returncode = os.waitstatus_to_exitcode(int(status)) if status else -1
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The server process (started at the first ``spawn``), and how to ask it for a child."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.path = str(directory / "forkserver.sock")
        self._env = env  # the server's own, at import time: the callers' minus their extras
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _started(self) -> None:
        with self._lock:
            if self._proc is not None:
                return
            self._proc = subprocess.Popen(
                [sys.executable, __file__, self.path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self._env,
            )
            assert self._proc.stdout is not None
            line = self._proc.stdout.readline()
            assert line == READY, f"the fork server did not start: {line!r}"

    def spawn(self, args: list[str], env: dict[str, str]) -> ForkedProcess:
        """Start ``args`` (``hookwall run ...``) as a child of the server."""
        self._started()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            request = json.dumps({"argv": args, "env": env, "cwd": os.getcwd()}).encode()
            with open(os.devnull, "rb") as devnull:
                socket.send_fds(conn, [request], [devnull.fileno(), out_w, err_w])
            conn.shutdown(socket.SHUT_WR)  # the whole request: the server reads to its end
            pid = int(conn.makefile("rb").readline())
        except BaseException:
            conn.close()
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        return ForkedProcess(args, conn, pid, out_r, err_r)

    def stop(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=10)


# -- the server --------------------------------------------------------------------------------


@dataclass
class Request:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdio: list[int]


def serve(path: str) -> Request:
    """Answer requests until stdin closes (then exit); in a forked child, return its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wakeup fd is used
    children: dict[int, socket.socket] = {}
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    while True:
        readable = select.select([listener.fileno(), wake_r, 0], [], [])[0]
        if 0 in readable and not os.read(0, 1):
            os._exit(0)  # the caller is gone; its children are its own to stop
        if wake_r in readable:
            os.read(wake_r, 4096)
            _report_exits(children)
        if listener.fileno() not in readable:
            continue
        conn, _ = listener.accept()
        data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        while chunk := conn.recv(MAX_REQUEST):
            data += chunk
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:  # the child: nothing of the server may stay open in it
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for sock in (listener, conn, *children.values()):
                sock.close()
            os.close(wake_r)
            os.close(wake_w)
            return Request(request["argv"], request["env"], request["cwd"], fds)
        for fd in fds:
            os.close(fd)
        conn.sendall(b"%d\n" % pid)
        children[pid] = conn
        _report_exits(children)  # one that ended before it was noted


def _report_exits(children: dict[int, socket.socket]) -> None:
    """Send each child that ended its wait status, and close its connection."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):  # the caller may be gone
                conn.sendall(b"%d\n" % status)
            conn.close()


def become(request: Request) -> Any:
    """In the child: take the request's stdio, environment and directory; run hookwall."""
    for target, fd in enumerate(request.stdio):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    tempfile.tempdir = None  # $TMPDIR is the request's, not the server's
    sys.argv = list(request.argv)
    from hookwall.cli.main import main

    return main(request.argv[1:])


if __name__ == "__main__":
    sys.path[0] = str(Path(sys.executable).parent)  # as for the ``hookwall`` script itself
    for name in WARM:
        with contextlib.suppress(ImportError):  # renamed: the child imports what it needs
            importlib.import_module(name)
    # A thread started by an import would be missing from every child: forking would lie.
    assert threading.active_count() == 1, f"threads after the imports: {threading.enumerate()}"
    sys.exit(become(serve(sys.argv[1])))
