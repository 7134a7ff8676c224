"""Framing through the real proxy: what a receiver sees is never ambiguous.

Each smuggling input is sent as raw bytes to ``hookwall run``; a raw receiver records every
byte it is sent. A refused head must get its refusal (status, reason, a request id that is
also in the JSON body), exactly one ``exchange`` event with that id, and must put zero bytes
on the receiver; afterwards nothing is in flight and a normal delivery is served. Valid
controls must arrive exactly as the normalised head. The response direction is the same table
from a hostile receiver: the sender gets a 502 and never a byte of the ambiguous response.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import pytest
import trustme

from hookwall.deliveries.store import Row, Store, StoreError, store_path
from tests.support import hostile
from tests.support.adversary import Adversary
from tests.support.hostile import assert_settled, read_all, reason_of, status_of
from tests.support.launcher import ProxyLauncher
from tests.support.proxyproc import ProxyProcess, trusting
from tests.support.receivers import tls_server_context
from tests.support.recorder import Recorder
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

POLICY = """\
version: 1
unsafe: true  # the loopback receivers stand for public ones
proxy:
  head_timeout: 5s
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
  timeouts: {connect: 2s, headers: 10s, response: 10s}
  ca_bundle: "{ca}"
"""
NAMES = ["recv.test", "tls.test", "adv.test"]


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_recorder(receiver_ca: trustme.CA) -> Iterator[Recorder]:
    server = Recorder(tls=tls_server_context(receiver_ca, "tls.test"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(start_module_proxy: ProxyLauncher) -> ProxyProcess:
    return start_module_proxy(POLICY, names=NAMES)


def _answer_id(answer: bytes) -> str:
    """The request id of a refusal: header and JSON body must agree."""
    head, _, body = answer.partition(b"\r\n\r\n")
    header = ""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"x-hookwall-request-id":
            header = value.strip().decode()
    assert header.startswith("req_"), answer
    assert json.loads(body)["request_id"] == header, answer
    return header


def _one_event(proxy: ProxyProcess, request_id: str, reason: str) -> dict[str, object]:
    event = proxy.exchange(request_id)
    assert event["reason"] == reason, event
    assert event["decision"] == "deny", event
    return event


def _stored(proxy: ProxyProcess, request_id: str) -> Row:
    """The delivery-store row of one exchange, once the writer thread committed it."""
    found: list[Row] = []

    def committed() -> bool:
        try:
            store = Store.open_readonly(store_path(proxy.data_dir))
        except StoreError:
            return False
        try:
            row = store.get(request_id)
        finally:
            store.close()
        found[:] = [row] if row is not None else []
        return bool(found)

    wait_until(committed, what=f"the store row of {request_id}")
    return found[0]


def _count_events(proxy: ProxyProcess, request_id: str) -> int:
    return sum(
        1
        for e in list(proxy.events)
        if e.get("event") == "exchange" and e.get("request_id") == request_id
    )


# -- requests --------------------------------------------------------------------------------
# (name, head lines after the request line, or a whole raw request with {T} and {H}), reason
BAD_REQUESTS = [
    ("obs-fold", "POST {T} HTTP/1.1\r\nHost: {H}\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"),
    ("obs-fold-tab", "POST {T} HTTP/1.1\r\nHost: {H}\r\nX-A: a\r\n\tContent-Length: 2\r\n\r\nok"),
    ("obs-fold-cl", "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length:\r\n 2\r\n\r\nok"),
    ("bare-cr-value", "POST {T} HTTP/1.1\r\nHost: {H}\r\nX-A: a\rContent-Length: 5\r\n\r\nok"),
    ("bare-cr-line-end", "GET {T} HTTP/1.1\r\nHost: {H}\r\r\nX-A: b\r\n\r\n"),
    ("bare-cr-request-line", "GET {T} HTTP/1.1\rX: y\r\nHost: {H}\r\n\r\n"),
    ("nul-value", "GET {T} HTTP/1.1\r\nHost: {H}\r\nX-A: a\x00b\r\n\r\n"),
    ("nul-name", "GET {T} HTTP/1.1\r\nHost: {H}\r\nX\x00A: b\r\n\r\n"),
    ("ctl-value", "GET {T} HTTP/1.1\r\nHost: {H}\r\nX-A: a\x0bb\r\n\r\n"),
    ("del-value", "GET {T} HTTP/1.1\r\nHost: {H}\r\nX-A: a\x7fb\r\n\r\n"),
    ("space-before-colon", "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length : 2\r\n\r\nok"),
    ("tab-before-colon", "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding\t: chunked\r\n\r\n"),
    ("empty-name", "GET {T} HTTP/1.1\r\nHost: {H}\r\n: x\r\n\r\n"),
    ("no-colon", "GET {T} HTTP/1.1\r\nHost: {H}\r\nX-A b\r\n\r\n"),
    ("invalid-name", "GET {T} HTTP/1.1\r\nHost: {H}\r\nX(A): b\r\n\r\n"),
    (
        "cl-twice-equal",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    ),
    (
        "cl-twice-differ",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\nok",
    ),
    ("cl-list", "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 2, 2\r\n\r\nok"),
    ("cl-signed", "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: +2\r\n\r\nok"),
    ("cl-not-a-number", "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 2x\r\n\r\nok"),
    ("cl-leading-zero", "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 02\r\n\r\nok"),
    (
        "cl-and-te",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-and-cl",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 4\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-chunked-chunked",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-gzip-chunked",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ),
    ("te-identity", "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: identity\r\n\r\n"),
    (
        "te-xchunked",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    ("te-tab", "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"),
    (
        "te-vertical-tab",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "te-two-fields",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("te-http10", "POST {T} HTTP/1.0\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two-hosts", "GET {T} HTTP/1.1\r\nHost: {H}\r\nHost: evil.test\r\n\r\n"),
    ("no-host", "GET {T} HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("bad-method", "G(T {T} HTTP/1.1\r\nHost: {H}\r\n\r\n"),
    ("bad-version", "GET {T} HTTP/1.2\r\nHost: {H}\r\n\r\n"),
    ("http2-version", "GET {T} HTTP/2.0\r\nHost: {H}\r\n\r\n"),
    ("double-space", "GET  {T} HTTP/1.1\r\nHost: {H}\r\n\r\n"),
    ("target-not-a-url", "GET recv.test/in HTTP/1.1\r\nHost: {H}\r\n\r\n"),
    ("target-with-del", "GET {T}\x7f HTTP/1.1\r\nHost: {H}\r\n\r\n"),
    ("garbage-request-line", "HELLO\r\n\r\n"),
]
BAD_HOSTS = [
    ("userinfo", "GET http://user@{H}/in HTTP/1.1\r\nHost: {H}\r\n\r\n"),
    ("percent", "GET http://recv%2etest:{P}/in HTTP/1.1\r\nHost: {H}\r\n\r\n"),
    ("connect-userinfo", "CONNECT user@{H} HTTP/1.1\r\nHost: {H}\r\n\r\n"),
]
# Passes hookwall's own rules, refused by mitmproxy's URL parser: one refusal, id and event.
MITM_REFUSED = [
    ("no-default-port", "GET ftp://recv.test/in HTTP/1.1\r\nHost: recv.test\r\n\r\n"),
    ("port-out-of-range", "GET http://recv.test:99999/in HTTP/1.1\r\nHost: recv.test\r\n\r\n"),
]


def _raw(template: str, recorder: Recorder) -> bytes:
    host = f"recv.test:{recorder.port}"
    return (
        template.replace("{T}", f"http://{host}/in")
        .replace("{H}", host)
        .replace("{P}", str(recorder.port))
        .encode("latin-1")
    )


def _refused(proxy: ProxyProcess, recorder: Recorder, raw: bytes, status: int, reason: str) -> str:
    """Refused with this status and reason, one event, nothing at the receiver: the id."""
    recorder.clear()
    answer = hostile.exchange(proxy, raw)
    assert status_of(answer) == status, answer
    assert reason_of(answer) == reason, answer
    request_id = _answer_id(answer)
    _one_event(proxy, request_id, reason)
    assert_settled(proxy, f"http://recv.test:{recorder.port}/ok")
    assert recorder.requests == 1  # only assert_settled's delivery reached the receiver
    assert b"/in" not in recorder.received, recorder.received
    assert _count_events(proxy, request_id) == 1
    return request_id


@pytest.mark.parametrize(("name", "template"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_ambiguous_request_heads_are_refused(
    proxy: ProxyProcess, recorder: Recorder, name: str, template: str
) -> None:
    _refused(proxy, recorder, _raw(template, recorder), 400, "bad-framing")


@pytest.mark.parametrize(("name", "template"), BAD_HOSTS, ids=[c[0] for c in BAD_HOSTS])
def test_request_line_hosts_with_userinfo_or_percent_are_invalid_host(
    proxy: ProxyProcess, recorder: Recorder, name: str, template: str
) -> None:
    _refused(proxy, recorder, _raw(template, recorder), 403, "invalid-host")


@pytest.mark.parametrize(("name", "template"), MITM_REFUSED, ids=[c[0] for c in MITM_REFUSED])
def test_heads_mitmproxy_refuses_get_an_id_and_an_event(
    proxy: ProxyProcess, recorder: Recorder, name: str, template: str
) -> None:
    _refused(proxy, recorder, _raw(template, recorder), 400, "bad-request")


def test_an_oversized_head_gets_an_id_and_an_event(proxy: ProxyProcess, recorder: Recorder) -> None:
    raw = _raw("GET {T} HTTP/1.1\r\nHost: {H}\r\nX-Big: " + "a" * 70000 + "\r\n\r\n", recorder)
    _refused(proxy, recorder, raw, 431, "header-too-large")


def test_refused_heads_have_a_delivery_store_row(proxy: ProxyProcess, recorder: Recorder) -> None:
    cases = [
        (BAD_REQUESTS[0][1], 400, "bad-framing"),
        (BAD_HOSTS[0][1], 403, "invalid-host"),
        (MITM_REFUSED[0][1], 400, "bad-request"),
    ]
    ids = {_refused(proxy, recorder, _raw(t, recorder), s, r): r for t, s, r in cases}
    for request_id, reason in ids.items():
        row = _stored(proxy, request_id)
        assert (row.event["reason"], row.event["decision"]) == (reason, "deny"), row.event


def test_a_refused_head_keeps_its_credentials_out_of_log_and_store(
    proxy: ProxyProcess, recorder: Recorder
) -> None:
    """The target of a refused request line is logged as sent, minus its credentials."""
    secret = "tok_framing_3f9d2a"
    raw = _raw(f"GET {{T}}?token={secret}\x7f HTTP/1.1\r\nHost: {{H}}\r\n\r\n", recorder)
    request_id = _refused(proxy, recorder, raw, 400, "bad-framing")
    event = _one_event(proxy, request_id, "bad-framing")
    assert "token=[redacted]" in str(event["url"]) and "token=[redacted]" in str(event["error"])
    assert secret not in json.dumps(event)
    assert secret not in json.dumps(_stored(proxy, request_id).event)


# (name, raw request, the head the receiver must get: normalised, exactly)
VALID = [
    (
        "chunked-body",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n",
    ),
    (
        "chunked-any-case",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"Transfer-Encoding: Chunked\r\n",
    ),
    ("htab-in-value", "GET {T} HTTP/1.1\r\nHost: {H}\r\nX-A: a\tb\r\n\r\n", b"X-A: a\tb\r\n"),
    (
        "obs-text-in-value",
        "GET {T} HTTP/1.1\r\nHost: {H}\r\nX-A: caf\xe9\r\n\r\n",
        b"X-A: caf\xe9\r\n",
    ),
    (
        "spaces-around-length",
        "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length:   2  \r\n\r\nok",
        b"Content-Length: 2\r\n",
    ),
    ("bare-lf-lines", "GET {T} HTTP/1.1\nHost: {H}\nX-A: b\n\n", b"X-A: b\r\n"),
]


@pytest.mark.parametrize(("name", "template", "seen"), VALID, ids=[c[0] for c in VALID])
def test_valid_heads_reach_the_receiver_normalised(
    proxy: ProxyProcess, recorder: Recorder, name: str, template: str, seen: bytes
) -> None:
    recorder.clear()
    raw = _raw(template, recorder)
    answer = hostile.exchange(proxy, raw.replace(b"Host:", b"Connection: close\r\nHost:", 1))
    assert status_of(answer) == 200, answer
    assert recorder.requests == 1
    received = recorder.received
    head = received.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert head.startswith(b"POST /in HTTP/1.1\r\n") or head.startswith(b"GET /in HTTP/1.1\r\n")
    assert seen in head, received
    assert b"\r\n " not in head and b"\n\n" not in received, received
    if b"chunked" in seen.lower():
        assert received.endswith(b"2\r\nok\r\n0\r\n\r\n"), received


# -- the same connection ---------------------------------------------------------------------
SMUGGLED = (
    "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {H}\r\n\r\n"
)
FIRST = "POST {T} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 2\r\n\r\nok"


def test_a_smuggling_second_request_on_a_kept_alive_connection(
    proxy: ProxyProcess, recorder: Recorder
) -> None:
    recorder.clear()
    with hostile.connect(proxy) as sock:
        sock.sendall(_raw(FIRST, recorder))
        first = b""
        while not first.endswith(b"ok"):
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert status_of(first) == 200, first
        sock.sendall(_raw(SMUGGLED, recorder))
        answer = read_all(sock)
    assert status_of(answer) == 400 and reason_of(answer) == "bad-framing", answer
    request_id = _answer_id(answer)
    _one_event(proxy, request_id, "bad-framing")
    assert recorder.requests == 1 and b"smuggled" not in recorder.received
    assert_settled(proxy, f"http://recv.test:{recorder.port}/ok")
    assert _count_events(proxy, request_id) == 1


def test_a_pipelined_smuggling_request_is_refused_after_the_first_is_served(
    proxy: ProxyProcess, recorder: Recorder
) -> None:
    recorder.clear()
    answer = hostile.exchange(proxy, _raw(FIRST, recorder) + _raw(SMUGGLED, recorder))
    assert status_of(answer) == 200, answer
    second = answer.split(b"\r\n\r\nok", 1)[1]
    assert status_of(second) == 400 and reason_of(second) == "bad-framing", answer
    _one_event(proxy, _answer_id(second), "bad-framing")
    assert recorder.requests == 1 and b"smuggled" not in recorder.received
    assert_settled(proxy, f"http://recv.test:{recorder.port}/ok")


def test_inside_intercepted_tls(proxy: ProxyProcess, tls_recorder: Recorder) -> None:
    tls_recorder.clear()
    target = f"tls.test:{tls_recorder.port}"
    with hostile.connect(proxy) as raw_sock:
        raw_sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = raw_sock.recv(65536)
            assert chunk, reply
            reply += chunk
        assert status_of(reply) == 200, reply
        context = trusting(proxy.ca_cert)
        with context.wrap_socket(raw_sock, server_hostname="tls.test") as sock:
            sock.sendall(
                f"POST /in HTTP/1.1\r\nHost: {target}\r\nX-A: a\r\n Transfer-Encoding: chunked"
                "\r\nContent-Length: 2\r\n\r\nok".encode()
            )
            answer = _read_tls(sock)
    assert status_of(answer) == 400 and reason_of(answer) == "bad-framing", answer
    event = _one_event(proxy, _answer_id(answer), "bad-framing")
    assert event["host"] == "tls.test", event
    assert tls_recorder.requests == 0 and tls_recorder.received == b""


def _read_tls(sock: ssl.SSLSocket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ssl.SSLError, OSError):
        pass
    return out


# -- responses -------------------------------------------------------------------------------
BAD_RESPONSES = [
    (
        "cl-and-te",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    ),
    ("cl-twice", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"),
    ("cl-conflict", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 9\r\n\r\nok"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n Content-Length: 9\r\nContent-Length: 2\r\n\r\nok"),
    ("bare-cr", b"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 9\r\nContent-Length: 2\r\n\r\nok"),
    ("nul", b"HTTP/1.1 200 OK\r\nX-A: a\x00\r\nContent-Length: 2\r\n\r\nok"),
    ("space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
    (
        "te-gzip-chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    ("te-identity", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok"),
    ("te-xchunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("te-on-http10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("bad-status-line", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"),
]


def _via_adversary(proxy: ProxyProcess, adversary: Adversary, response: bytes) -> bytes:
    url = f"http://adv.test:{adversary.port}/raw?hex={response.hex()}"
    return hostile.exchange(proxy, hostile.request("GET", url, ["Connection: close"]))


@pytest.mark.parametrize(("name", "response"), BAD_RESPONSES, ids=[c[0] for c in BAD_RESPONSES])
def test_ambiguous_response_heads_are_not_relayed(
    proxy: ProxyProcess, adversary: Adversary, recorder: Recorder, name: str, response: bytes
) -> None:
    answer = _via_adversary(proxy, adversary, response)
    assert status_of(answer) == 502, answer
    assert reason_of(answer) == "response-bad-framing", answer
    request_id = _answer_id(answer)
    assert answer.startswith(b"HTTP/1.1 502 "), answer  # _answer_id: the rest is our JSON
    _one_event(proxy, request_id, "response-bad-framing")
    assert_settled(proxy, f"http://recv.test:{recorder.port}/ok")
    assert _count_events(proxy, request_id) == 1


def test_a_valid_raw_response_is_relayed(proxy: ProxyProcess, adversary: Adversary) -> None:
    answer = _via_adversary(
        proxy, adversary, b"HTTP/1.1 200 OK\r\nX-A: a\tb\r\nContent-Length: 2\r\n\r\nok"
    )
    assert status_of(answer) == 200 and answer.endswith(b"\r\n\r\nok"), answer
    assert b"X-A: a\tb\r\n" in answer
