"""hookwall doctor's probes against what is not a working hookwall: bundles on disk, a port
nobody listens on, a proxy that is something else. (Against a real hookwall:
tests/integration/test_doctor.py.)"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hookwall.cli.doctorchecks import Trust, parse_proxy_url
from hookwall.cli.doctorprobe import NetworkProbes

PROBES = NetworkProbes(timeout=5)


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class _NotHookwall(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"hello": "world"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def other_proxy() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotHookwall)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_a_bundle_file_holds_the_fingerprints_of_its_certificates(tmp_path: Path) -> None:
    one, two = trustme.CA(), trustme.CA()
    path = tmp_path / "bundle.pem"
    path.write_bytes(
        one.cert_pem.bytes() + b"junk\n-----BEGIN CERTIFICATE-----\nnot base64\n"
        b"-----END CERTIFICATE-----\n" + two.cert_pem.bytes()
    )
    bundle = PROBES.bundle(str(path), directory=False)
    assert bundle.exists and bundle.readable and not bundle.is_dir
    assert len(bundle.fingerprints) == 2 and all(len(f) == 95 for f in bundle.fingerprints)


def test_a_directory_a_missing_file_and_a_file_without_certificates(tmp_path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "a.pem"))
    (tmp_path / "notes.txt").write_text("nothing here")
    directory = PROBES.bundle(str(tmp_path), directory=True)
    assert directory.is_dir and len(directory.fingerprints) == 1
    assert not PROBES.bundle(str(tmp_path / "nope.pem"), directory=False).exists
    assert PROBES.bundle(str(tmp_path / "notes.txt"), directory=False).fingerprints == ()


def test_nothing_listening_is_unreachable(closed_port: int) -> None:
    proxy = parse_proxy_url("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    assert PROBES.whoami(proxy).outcome == "unreachable"
    assert PROBES.handshake(proxy, Trust()).outcome == "unreachable"


def test_a_proxy_that_is_not_hookwall_answers_no_whoami(other_proxy: int) -> None:
    proxy = parse_proxy_url("HTTP_PROXY", f"http://127.0.0.1:{other_proxy}")
    probe = PROBES.whoami(proxy)
    assert (probe.outcome, probe.status) == ("answered", 200) and probe.whoami is None
    refused = PROBES.handshake(proxy, Trust())  # it answers CONNECT with an error
    assert refused.outcome == "refused" and refused.status != 200


def test_a_bundle_that_cannot_be_loaded_is_untrusted(tmp_path: Path, closed_port: int) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    proxy = parse_proxy_url("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    assert PROBES.handshake(proxy, Trust(cafile=str(junk))).outcome == "untrusted"
