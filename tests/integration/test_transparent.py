"""Transparent mode: a sender with no proxy settings at all cannot go around hookwall.

The sender is curl run as another user (``SENDER_UID``) in the test session's network
namespace (only ``lo``), whose outbound TCP the kernel redirects to hookwall's transparent
listener by the rules ``hookwall redirect-rules`` prints (applied with iptables-restore, as
the README says); hookwall itself runs as root, the exempt user. Every refusal asserts that
the address the sender dialled saw no connection at all.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hostile import assert_settled
from tests.support.launcher import ProxyLauncher
from tests.support.netns import NETWORK_ISOLATED
from tests.support.proxyproc import HOOKWALL, ProxyProcess
from tests.support.receivers import Receiver, start_receiver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not NETWORK_ISOLATED
        or not shutil.which("iptables")
        or not shutil.which("iptables-restore")
        or not shutil.which("setpriv"),
        reason="needs root in the test network namespace, iptables(-restore) and setpriv",
    ),
]

SENDER_UID = 47_123  # no other process of the session runs as this user
POLICY = """\
version: 1
unsafe: true
defaults:
  network:
    deny: [special-purpose]
    allow: [127.0.0.2/32]
    ports: ["1-65535"]
  ca_bundle: {ca}
destinations:
  - hosts: [passthrough.hooks.test]
    tls: passthrough
"""
NAMES = {"hooks.test": "127.0.0.2", "passthrough.hooks.test": "127.0.0.2", "lvh.test": "127.0.0.1"}


@contextmanager
def redirected(uid: int, port: int) -> Iterator[None]:
    """The kernel sends ``uid``'s outbound TCP to ``port`` on loopback, for the block (the
    innermost block wins: its rule goes first)."""
    rule = ["-p", "tcp", "-m", "owner", "--uid-owner", str(uid), "-j", "REDIRECT"]
    rule += ["--to-ports", str(port)]
    subprocess.run(["iptables", "-t", "nat", "-I", "OUTPUT", "1", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-t", "nat", "-D", "OUTPUT", *rule], check=True)


@contextmanager
def redirected_by_hookwall(uid: int, port: int) -> Iterator[None]:
    """``hookwall redirect-rules --uid UID --exempt-uid 0 --port PORT`` applied, for the block."""

    def restore(*args: str) -> None:
        rules = subprocess.run(
            [str(HOOKWALL), "redirect-rules", *args, "--format", "iptables"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        subprocess.run(["iptables-restore", "--noflush"], input=rules, text=True, check=True)

    restore("--uid", str(uid), "--exempt-uid", "0", "--port", str(port))
    try:
        yield
    finally:
        restore("--remove")


def transparent_port(proxy: ProxyProcess) -> int:
    started = proxy.wait_for(lambda e: e.get("event") == "proxy_started")
    (listen,) = [item["listen"] for item in started["listeners"] if item["mode"] == "transparent"]
    return int(listen.rpartition(":")[2])


@pytest.fixture(scope="module")
def readable() -> Iterator[Callable[[Path], Path]]:
    """A copy of a file the sender's user may read (the test's own temp dirs are root's)."""
    directory = Path(tempfile.mkdtemp(prefix="hookwall-sender-"))
    directory.chmod(0o755)

    def copy(path: Path) -> Path:
        target = directory / f"{len(list(directory.iterdir()))}-{path.name}"
        shutil.copyfile(path, target)
        target.chmod(0o644)
        return target

    yield copy
    shutil.rmtree(directory)


def curl_as_sender(*args: str, ca: Path | None = None) -> dict[str, Any]:
    """curl run as the redirected user with no proxy variables at all: its status, headers
    and body (status 0: no HTTP answer)."""
    command = ["setpriv", f"--reuid={SENDER_UID}", f"--regid={SENDER_UID}", "--clear-groups"]
    command += ["curl", "-sS", "--max-time", "10", "--include", "--noproxy", "*"]
    command += [*(["--cacert", str(ca)] if ca else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env={})
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split()[1]) if head.startswith("HTTP/") else 0
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(":") for line in head.splitlines()[1:])
    }
    return {"status": status, "headers": headers, "body": body, "error": done.stderr}


def why_not_delivered(proc: ProxyProcess, answer: dict[str, Any], receiver: Receiver) -> str:
    """What to look at when a delivery through the transparent listener failed (a flake seen
    twice in full runs, never alone: "server closed connection" from the receiver's side):
    the exchange event, the receiver's accepted connections, and what netfilter's connection
    tracking holds for the receiver's port (a redirected sender connection's NAT binding that
    hookwall's own connection to the receiver could match)."""
    request_id = answer["headers"].get("x-hookwall-request-id")
    events = [e for e in list(proc.events) if e.get("request_id") == request_id]
    try:
        table = Path("/proc/net/nf_conntrack").read_text().splitlines()
    except OSError as exc:
        table = [f"(no conntrack table: {exc})"]
    port = f"port={receiver.port} "
    tracked = [line for line in table if port in line + " "]
    return "\n".join(
        [
            f"answer: {answer}",
            f"events: {events}",
            f"receiver {receiver.host}:{receiver.port} accepted {receiver.connections}",
            "conntrack:",
            *tracked[-40:],
        ]
    )


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> Iterator[ProxyProcess]:
    """Both modes at once: the explicit listener and the transparent one."""
    proc = start_module_proxy(POLICY, names=NAMES, args=["--listen", "transparent@127.0.0.1:0"])
    with redirected_by_hookwall(SENDER_UID, transparent_port(proc)):
        yield proc


@pytest.fixture
def canary() -> Iterator[Receiver]:
    """What the issue names: a service on 127.0.0.1:3000 that must see nothing."""
    server = start_receiver("127.0.0.1", 3000)
    yield server
    server.stop()


def exchange_events(proxy: ProxyProcess, start: int) -> list[dict[str, Any]]:
    return [e for e in proxy.events[start:] if e.get("event") == "exchange"]


def the_exchange(proxy: ProxyProcess, start: int) -> dict[str, Any]:
    """The one exchange event logged since ``start`` (it may follow the answer)."""
    proxy.wait_count(lambda e: e.get("event") == "exchange", 1, start=start)
    events = exchange_events(proxy, start)
    assert len(events) == 1, events
    return events[0]


def test_a_blocked_address_is_refused_and_never_reached(
    proxy: ProxyProcess, canary: Receiver
) -> None:
    start = len(proxy.events)
    answer = curl_as_sender("http://127.0.0.1:3000/")
    assert answer["status"] == 403
    assert answer["headers"]["x-hookwall-reason"] == "address-blocked"
    assert json.loads(answer["body"])["error"] == "address-blocked"
    assert canary.connections == 0 and canary.requests == []
    event = the_exchange(proxy, start)
    assert event["reason"] == "address-blocked" and event["host"] == "127.0.0.1"


def test_an_allowed_receiver_gets_the_delivery(
    proxy: ProxyProcess, plain_twins: tuple[Receiver, Receiver]
) -> None:
    allowed, forbidden = plain_twins
    start = len(proxy.events)
    url = f"http://hooks.test:{allowed.port}/hook"
    answer = curl_as_sender(
        url, "-d", '{"ok": 1}', "--resolve", f"hooks.test:{allowed.port}:127.0.0.2"
    )
    assert answer["status"] == 200, answer
    assert allowed.requests[-1].path == "/hook"
    assert allowed.requests[-1].headers["host"] == f"hooks.test:{allowed.port}"
    assert forbidden.connections == 0
    event = the_exchange(proxy, start)
    assert event["decision"] == "allow" and event["host"] == "hooks.test"


def test_an_allowed_name_does_not_carry_a_request_dialled_to_a_blocked_address(
    proxy: ProxyProcess, plain_twins: tuple[Receiver, Receiver]
) -> None:
    """The Host header names an allowed receiver; the sender dialled its forbidden twin."""
    allowed, forbidden = plain_twins
    delivered = len(allowed.requests)
    answer = curl_as_sender(
        f"http://127.0.0.1:{forbidden.port}/", "-H", f"Host: hooks.test:{forbidden.port}"
    )
    assert answer["status"] == 403
    assert answer["headers"]["x-hookwall-reason"] == "address-blocked"
    assert "dialled to 127.0.0.1" in json.loads(answer["body"])["message"]
    assert forbidden.connections == 0 and len(allowed.requests) == delivered


def test_a_host_header_naming_another_port_is_refused(
    proxy: ProxyProcess, plain_twins: tuple[Receiver, Receiver]
) -> None:
    allowed, _ = plain_twins
    answer = curl_as_sender(
        f"http://127.0.0.2:{allowed.port}/", "-H", f"Host: hooks.test:{allowed.port + 1}"
    )
    assert answer["status"] == 403
    assert answer["headers"]["x-hookwall-reason"] == "host-mismatch"


@contextmanager
def resetting_listener() -> Iterator[int]:
    """A loopback port whose every connection is answered with a reset (a close with
    SO_LINGER 0), as hookwall ends some refused connections."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_reset_sender_connection_never_captures_hookwalls_own(
    proxy: ProxyProcess, plain_twins: tuple[Receiver, Receiver]
) -> None:
    """Connection tracking keeps a redirected connection that was reset from the far side in
    CLOSE, with its NAT binding, for seconds; a connection of hookwall's (uid 0 here) to the
    same receiver from the same source port would match it and go to the redirect's target.
    The rules of hookwall redirect-rules (the module's) give hookwall's own connections a
    conntrack zone of their own: it reaches the receiver. (Without that rule it does not:
    the flake of this module's per-test proxies.)"""
    allowed, _ = plain_twins
    with socket.create_server(("127.0.0.1", 0)) as probe:
        source_port = probe.getsockname()[1]
    with resetting_listener() as reset_port, redirected(SENDER_UID, reset_port):
        answer = curl_as_sender(
            f"http://127.0.0.2:{allowed.port}/", "--local-port", str(source_port)
        )
        assert answer["status"] == 0, answer  # reset: the redirect's target answered it
        before = allowed.connections
        with socket.socket() as own:  # hookwall's connection: same source, same receiver
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.settimeout(10)
            own.bind(("127.0.0.1", source_port))
            own.connect(("127.0.0.2", allowed.port))
            own.sendall(b"GET /own HTTP/1.1\r\nHost: hooks.test\r\nConnection: close\r\n\r\n")
            head = own.recv(64)
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    assert allowed.connections == before + 1


def test_https_is_intercepted_and_connected_to_the_checked_address(
    proxy: ProxyProcess, tls_twins: tuple[Receiver, Receiver], readable: Callable[[Path], Path]
) -> None:
    allowed, forbidden = tls_twins
    url = f"https://hooks.test:{allowed.port}/secure"
    answer = curl_as_sender(
        url, "--resolve", f"hooks.test:{allowed.port}:127.0.0.2", ca=readable(proxy.ca_cert)
    )
    assert answer["status"] == 200, answer
    assert allowed.requests[-1].path == "/secure"
    assert forbidden.connections == 0


def test_https_dialled_to_a_blocked_address_never_reaches_it(
    proxy: ProxyProcess, tls_twins: tuple[Receiver, Receiver], readable: Callable[[Path], Path]
) -> None:
    """SNI names the allowed receiver; the address dialled is its forbidden twin. The sender
    trusts hookwall's CA, so it reads the refusal inside TLS, as an explicit client would."""
    _, forbidden = tls_twins
    start = len(proxy.events)
    url = f"https://hooks.test:{forbidden.port}/"
    answer = curl_as_sender(
        url, "--resolve", f"hooks.test:{forbidden.port}:127.0.0.1", ca=readable(proxy.ca_cert)
    )
    assert answer["status"] == 403, answer
    assert answer["headers"]["x-hookwall-reason"] == "address-blocked"
    assert forbidden.connections == 0
    event = the_exchange(proxy, start)  # the refused connection's one: the request answered
    assert event["reason"] == "address-blocked" and event["method"] == "GET"
    assert event["request_id"] == answer["headers"]["x-hookwall-request-id"]


def test_https_to_a_blocked_address_without_trusting_the_ca_is_one_event(
    proxy: ProxyProcess, tls_twins: tuple[Receiver, Receiver]
) -> None:
    """The sender refuses hookwall's certificate: it reads nothing, and is logged once."""
    _, forbidden = tls_twins
    start = len(proxy.events)
    url = f"https://hooks.test:{forbidden.port}/"
    answer = curl_as_sender(url, "--resolve", f"hooks.test:{forbidden.port}:127.0.0.1")
    assert answer["status"] == 0 and forbidden.connections == 0
    event = the_exchange(proxy, start)
    assert (event["method"], event["reason"]) == ("CONNECT", "address-blocked")


def test_https_passthrough_goes_to_the_pinned_address_untouched(
    proxy: ProxyProcess,
    tls_twins: tuple[Receiver, Receiver],
    receiver_ca_file: Path,
    readable: Callable[[Path], Path],
) -> None:
    allowed, forbidden = tls_twins
    start = len(proxy.events)
    url = f"https://passthrough.hooks.test:{allowed.port}/through"
    resolve = f"passthrough.hooks.test:{allowed.port}:127.0.0.2"
    # The receiver's own certificate reaches the sender: the bytes are not touched.
    answer = curl_as_sender(url, "--resolve", resolve, ca=readable(receiver_ca_file))
    assert answer["status"] == 200, answer
    assert allowed.requests[-1].path == "/through"
    assert forbidden.connections == 0
    event = the_exchange(proxy, start)
    assert event["tls"] == "passthrough" and event["host"] == "passthrough.hooks.test"


def test_the_explicit_listener_serves_at_the_same_time(
    proxy: ProxyProcess, plain_twins: tuple[Receiver, Receiver]
) -> None:
    allowed, _ = plain_twins
    url = f"http://hooks.test:{allowed.port}/explicit"
    response = httpx.post(url, content=b"{}", proxy=proxy.url, trust_env=False, timeout=10)
    assert response.status_code == 200
    assert allowed.requests[-1].path == "/explicit"


def test_a_connection_made_straight_to_the_transparent_listener_is_refused(
    proxy: ProxyProcess,
) -> None:
    """Not redirected (root is exempt): what it dialled is hookwall itself, never a receiver."""
    port = transparent_port(proxy)
    response = httpx.get(
        f"http://127.0.0.1:{port}/", headers={"Host": "hooks.test"}, trust_env=False, timeout=10
    )
    assert response.status_code == 403
    assert response.headers["x-hookwall-reason"] in ("address-blocked", "host-mismatch")


SENDERS = (
    POLICY
    + """\
senders:
  billing:
    credentials: [env:HW_T_BILLING]
    clients: [127.0.0.0/8]
  notify:
    credentials: [env:HW_T_NOTIFY]
"""
)
TOKENS = {
    "HW_T_BILLING": "billing-token-0123456789abcdef",
    "HW_T_NOTIFY": "notify-token-0123456789abcdef",
}


@pytest.mark.parametrize(("args", "sender"), [((), "billing"), (("--sender", "notify"), "notify")])
def test_a_transparent_sender_is_known_without_credentials(
    start_proxy: ProxyLauncher,
    plain_twins: tuple[Receiver, Receiver],
    args: tuple[str, ...],
    sender: str,
) -> None:
    """By its client address (billing's clients: hold 127.0.0.1), or by the listener's
    --sender; a transparent sender cannot send proxy credentials."""
    allowed, _ = plain_twins
    proc = start_proxy(
        SENDERS, names=NAMES, env=TOKENS, listen="transparent@127.0.0.1:0", args=list(args)
    )
    start = len(proc.events)
    with redirected(SENDER_UID, transparent_port(proc)):
        url = f"http://hooks.test:{allowed.port}/who"
        answer = curl_as_sender(url, "--resolve", f"hooks.test:{allowed.port}:127.0.0.2")
        assert answer["status"] == 200, why_not_delivered(proc, answer, allowed)
    event = the_exchange(proc, start)
    assert event["sender"] == sender


def test_an_unknown_listener_sender_stops_the_start(start_proxy: ProxyLauncher) -> None:
    proc = start_proxy.spawn(
        SENDERS, env=TOKENS, listen="transparent@127.0.0.1:0", args=["--sender", "bliling"]
    )
    assert proc.proc.wait(timeout=30) == 1
    assert "--sender bliling: the policy defines no sender of that name" in "".join(proc.stderr)
    start_proxy.started.clear()  # it has exited, as it must


def test_workers_share_the_transparent_listener(
    start_proxy: ProxyLauncher, plain_twins: tuple[Receiver, Receiver]
) -> None:
    allowed, _ = plain_twins
    proc = start_proxy(POLICY, names=NAMES, listen="transparent@127.0.0.1:0", workers=2)
    with redirected(SENDER_UID, proc.port):
        for index in range(4):
            url = f"http://hooks.test:{allowed.port}/w{index}"
            answer = curl_as_sender(url, "--resolve", f"hooks.test:{allowed.port}:127.0.0.2")
            assert answer["status"] == 200, why_not_delivered(proc, answer, allowed)
    assert {r.path for r in allowed.requests} >= {"/w0", "/w1", "/w2", "/w3"}


# -- hostile senders on the transparent listener -------------------------------------------------

RAW_CLIENT = """\
import socket, ssl, sys
target, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.create_connection((target, port), timeout=10)
if mode == "tls-no-sni":
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        sock = context.wrap_socket(sock)  # an address, no name: no SNI at all
        sock.sendall(b"GET / HTTP/1.1\\r\\nHost: hooks.test\\r\\n\\r\\n")
    except (OSError, ssl.SSLError) as exc:
        print("closed", type(exc).__name__)
        sys.exit(0)
else:
    sock.sendall(sys.stdin.buffer.read())
    sock.shutdown(socket.SHUT_WR)  # all it has to say: an answer, then the close
data = b""
try:
    while chunk := sock.recv(65536):
        data += chunk
except (OSError, ssl.SSLError):
    pass
sys.stdout.write(data.decode("latin-1"))
"""


# The sender's user cannot run the venv's interpreter (it may live under root's home).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


def raw_as_sender(target: str, port: int, mode: str = "raw", data: bytes = b"") -> str:
    """Bytes sent by the redirected user to target:port; what came back before the close."""
    if SYSTEM_PYTHON is None:
        pytest.skip("needs a python3 in /usr/bin the sender's user may run")
    command = ["setpriv", f"--reuid={SENDER_UID}", f"--regid={SENDER_UID}", "--clear-groups"]
    command += [SYSTEM_PYTHON, "-c", RAW_CLIENT, target, str(port), mode]
    done = subprocess.run(command, input=data, capture_output=True, timeout=30, check=True)
    return done.stdout.decode("latin-1")


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH_9.0\r\n",  # not HTTP at all
        b"GET / HTTP/1.0\r\n\r\n",  # no Host: the dialled address is all there is
        b"GET http://hooks.test/ HTTP/1.1\r\nHost: hooks.test\r\n\r\n",  # absolute-form
        b"CONNECT hooks.test:443 HTTP/1.1\r\nHost: hooks.test:443\r\n\r\n",  # a proxy's verb
        b"GET / HTTP/1.1\r\nHost: hooks.test\r\nHost: lvh.test\r\n\r\n",  # two names
    ],
)
def test_hostile_bytes_dialled_to_a_blocked_address_never_reach_it(
    proxy: ProxyProcess, canary: Receiver, plain_twins: tuple[Receiver, Receiver], data: bytes
) -> None:
    allowed, _ = plain_twins
    answer = raw_as_sender("127.0.0.1", 3000, data=data)
    assert not answer.startswith("HTTP/1.1 200") and not answer.startswith("HTTP/1.0 200")
    assert canary.connections == 0
    assert_settled(proxy, f"http://hooks.test:{allowed.port}/after")


def test_tls_without_a_name_to_a_blocked_address_is_refused(
    proxy: ProxyProcess, canary: Receiver, plain_twins: tuple[Receiver, Receiver]
) -> None:
    allowed, _ = plain_twins
    start = len(proxy.events)
    answer = raw_as_sender("127.0.0.1", 3000, mode="tls-no-sni")
    assert "200 OK" not in answer
    assert canary.connections == 0
    event = the_exchange(proxy, start)
    assert (event["host"], event["reason"]) == ("127.0.0.1", "address-blocked")
    assert_settled(proxy, f"http://hooks.test:{allowed.port}/after")
