"""A network namespace of its own for a test that changes netfilter rules, and commands run
in it, as root or as another uid.

The session already runs in a namespace of its own (``tests/support/netns.py``), but rules
applied there would touch every other test. ``NestedNetns`` makes a fresh one with only
``lo`` up, held open by a process of its own (``unshare --net``); each command joins it with
``nsenter --net`` and shares it, and closing it ends the holder, and with it the namespace
and its rules. ``TagListener`` is a TCP listener in it that answers each connection with its
name, so a client can tell where a connection landed; ``connect`` is that client, run as any
uid (``as_uid``: ``setpriv``).

    with NestedNetns() as ns:
        ns.run(["iptables-restore", "--noflush"], input=rules)
        with ns.listener("stand-in") as stand_in, ns.listener("canary") as canary:
            assert ns.connect("127.0.0.1", canary.port, uid=1234) == "stand-in"
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

TIMEOUT = 30.0
TOOLS = ("unshare", "nsenter", "setpriv", "ip")

# Held open until the test closes stdin: the namespace lives exactly as long as the test.
_HOLDER = "ip link set lo up && echo ready && exec cat > /dev/null"

# A dual-stack listener (IPv4 as mapped addresses) on every address of the namespace: it
# prints its port, then "accepted ADDRESS" for each connection before answering its name.
_LISTENER = """\
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("::", port))
server.listen(64)
print(server.getsockname()[1], flush=True)
while True:
    conn, peer = server.accept()
    print("accepted", peer[0], flush=True)
    conn.sendall(name.encode())
    conn.close()
"""

# One connection; prints what the listener answered. With "wait": prints its pid first and
# connects after a line on stdin (the test moves it into a cgroup in between).
_CLIENT = """\
import os, socket, sys
host, port, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "wait"
if wait:
    print(os.getpid(), flush=True)
    sys.stdin.readline()
with socket.create_connection((host, port), timeout=10) as conn:
    data = b""
    while chunk := conn.recv(256):
        data += chunk
print(data.decode(), flush=True)
"""


def skip_reason() -> str | None:
    """Why a nested namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (a network namespace of its own, netfilter rules, other uids)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (util-linux, iproute2)"
    return None


def as_uid(uid: int, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``uid`` (and gid ``uid``), with no supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]


@functools.cache
def python_for(uid: int) -> str | None:
    """An interpreter ``uid`` can run (the session's may live where only root can read)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.path.exists(candidate):
            continue
        probe = as_uid(uid, [candidate, "-I", "-c", "import socket"])
        if subprocess.run(probe, capture_output=True, timeout=TIMEOUT).returncode == 0:
            return candidate
    return None


class TagListener:
    """A listener in the namespace that answers every connection with ``name``."""

    def __init__(self, process: subprocess.Popen[str], name: str) -> None:
        self.process = process
        self.name = name
        line = _read_line(process.stdout)
        if not line.strip().isdigit():
            process.kill()
            _, err = process.communicate(timeout=TIMEOUT)
            raise RuntimeError(f"listener {name} did not start: {line!r} {err}")
        self.port = int(line)
        self._accepted: list[str] | None = None

    def stop(self) -> list[str]:
        """Stop it; the source addresses of the connections it accepted."""
        if self._accepted is None:
            self.process.kill()
            out, _ = self.process.communicate(timeout=TIMEOUT)
            self._accepted = [line.split()[1] for line in out.splitlines() if line]
        return self._accepted

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NestedNetns:
    """A fresh network namespace with only ``lo`` up, for as long as the ``with`` block."""

    def __init__(self) -> None:
        self._holder: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        reason = skip_reason()
        if reason is not None:
            raise RuntimeError(f"no nested network namespace: {reason}")
        holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", _HOLDER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if _read_line(holder.stdout).strip() != "ready":
            holder.kill()
            _, err = holder.communicate(timeout=TIMEOUT)
            raise RuntimeError(f"unshare --net failed: {err.strip()}")
        self._holder = holder
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        assert holder.stdin is not None
        holder.stdin.close()  # cat ends, and the namespace with its last process
        try:
            holder.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(timeout=TIMEOUT)
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()

    @property
    def path(self) -> Path:
        """The namespace's file (``nsenter --net=PATH``, ``ip netns attach``)."""
        assert self._holder is not None, "use NestedNetns in a with block"
        return Path(f"/proc/{self._holder.pid}/ns/net")

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside (in ``env``, or this process's environment); with ``check``,
        a failure raises with its stderr."""
        result = subprocess.run(
            self.command(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside (the caller stops it)."""
        return subprocess.Popen(self.command(argv), text=True, **kwargs)

    def listener(self, name: str, port: int = 0) -> TagListener:
        """A ``TagListener`` on ``port`` of every address (0: a free one)."""
        process = self.popen(
            [sys.executable, "-I", "-c", _LISTENER, name, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return TagListener(process, name)

    def connect(
        self, host: str, port: int, *, uid: int | None = None, cgroup: Path | None = None
    ) -> str:
        """Connect to host:port as ``uid`` (None: root), from inside ``cgroup`` (its
        directory in the cgroup v2 hierarchy) when given; the name of the listener reached."""
        python = sys.executable if uid is None else python_for(uid)
        if python is None:
            raise RuntimeError(f"no Python interpreter that uid {uid} may run")
        argv = [python, "-I", "-c", _CLIENT, host, str(port), "wait" if cgroup else "now"]
        process = self.popen(
            argv if uid is None else as_uid(uid, argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            if cgroup is not None:
                _enter_cgroup(process, cgroup)
            out, err = process.communicate(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=TIMEOUT)
        if process.returncode != 0:
            raise ConnectionError(f"connect to {host}:{port} as uid {uid}: {err.strip()}")
        return out.strip().splitlines()[-1] if out.strip() else ""


def _enter_cgroup(process: subprocess.Popen[str], cgroup: Path) -> None:
    stdin: IO[str] | None = process.stdin
    assert stdin is not None
    pid = _read_line(process.stdout).strip()
    (cgroup / "cgroup.procs").write_text(pid)
    stdin.write("go\n")
    stdin.flush()


def _read_line(stream: IO[str] | None) -> str:
    """One line, read from the pipe itself: nothing is left in a buffer that a later
    ``communicate()`` (which reads the pipe, not the buffer) would miss."""
    assert stream is not None
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            break
        data += chunk
    return data.decode()


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified on a hybrid
    host), or None without one."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    return None
