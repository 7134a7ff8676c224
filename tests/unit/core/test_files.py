"""Secret-bearing files are *created* with mode 0600: never a moment with the umask's mode.

The proof without racing a reader: set a permissive umask and disable every chmod hookwall
(or mitmproxy) could call from Python; the files still end up 0600, so they were created so.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import certs

from hookwall.app.ca import CA_KEY_NAME, ensure_ca
from hookwall.core.files import create_private, write_private
from hookwall.deliveries.store import Record, Store, store_path
from hookwall.deliveries.store.schema import SIDE_FILES


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022], ids=["umask-000", "umask-022"])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every chmod from Python is refused: a file must be right at creation."""
    calls: list[object] = []

    def refuse(*args: object, **_: object) -> None:
        calls.append(args)

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    return calls


def test_write_private_creates_0600_and_replaces_atomically(
    tmp_path: Path, permissive_umask: int, no_chmod: list[object]
) -> None:
    target = tmp_path / "key.pem"
    write_private(target, b"first")
    assert mode(target) == 0o600 and target.read_bytes() == b"first"
    write_private(target, b"second")
    assert mode(target) == 0o600 and target.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]  # no temp file left


def test_write_private_narrows_a_file_left_wide(tmp_path: Path, permissive_umask: int) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_private(target, b"new")
    assert mode(target) == 0o600 and target.read_bytes() == b"new"
    os.umask(0o277)  # a stricter umask: still exactly 0600 (the owner must write it)
    write_private(target, b"newer")
    assert mode(target) == 0o600


def test_create_private_keeps_contents_and_narrows(tmp_path: Path, permissive_umask: int) -> None:
    fresh = tmp_path / "fresh"
    create_private(fresh)
    assert mode(fresh) == 0o600 and fresh.read_bytes() == b""
    old = tmp_path / "old"
    old.write_bytes(b"rows")
    old.chmod(0o644)
    create_private(old)
    assert mode(old) == 0o600 and old.read_bytes() == b"rows"


def _record(n: int) -> Record:
    event = {"request_id": f"req_{n:020x}", "method": "POST", "url": "http://h/", "host": "h"}
    return Record(
        ts=1.0 + n,
        event=event,
        request_headers=[("Content-Type", "application/json")],
        request_body=b'{"body": "with personal data"}' * 20,
        response_headers=[],
        response_body=b"ok",
    )


def test_store_database_wal_and_shm_are_0600_from_creation(
    tmp_path: Path, permissive_umask: int, no_chmod: list[object]
) -> None:
    path = store_path(tmp_path / "data")
    store = Store.open(path)
    try:
        store.insert([_record(n) for n in range(50)])
        side = [path.with_name(path.name + s) for s in SIDE_FILES]
        present = [p for p in side if p.exists()]
        assert {p.name for p in present} >= {"deliveries.db-wal", "deliveries.db-shm"}
        assert path.with_name("deliveries.db-wal").stat().st_size > 0  # holds the new rows
        for file in [path, *present]:
            assert mode(file) == 0o600, file.name
    finally:
        store.close()


def test_store_left_wide_by_an_older_hookwall_is_narrowed(
    tmp_path: Path, permissive_umask: int
) -> None:
    path = store_path(tmp_path)
    Store.open(path).close()
    for file in [path, *(path.with_name(path.name + s) for s in SIDE_FILES)]:
        file.touch()
        file.chmod(0o644)
    store = Store.open(path)
    try:
        store.insert([_record(1)])
        for file in tmp_path.iterdir():
            assert mode(file) == 0o600, file.name
    finally:
        store.close()


def _operator_ca(tmp_path: Path) -> Path:
    """A CA PEM (key + certificate) as an operator would pass with --ca."""
    made = tmp_path / "made"
    certs.CertStore.create_store(made, "op", 2048)
    return made / "op-ca.pem"


def test_provided_ca_key_is_0600_from_creation(
    tmp_path: Path, permissive_umask: int, no_chmod: list[object]
) -> None:
    pem = _operator_ca(tmp_path)
    data = tmp_path / "data"
    cert = ensure_ca(data, pem)
    assert mode(data / CA_KEY_NAME) == 0o600
    assert (data / CA_KEY_NAME).read_bytes() == pem.read_bytes()
    assert "BEGIN CERTIFICATE" in cert.read_text() and "PRIVATE" not in cert.read_text()
    assert not list(data.glob(".*.tmp"))


def test_generated_ca_key_files_are_0600_from_creation(
    tmp_path: Path, permissive_umask: int, no_chmod: list[object]
) -> None:
    data = tmp_path / "data"
    ensure_ca(data)
    assert mode(data / CA_KEY_NAME) == 0o600
    assert mode(data / "mitmproxy-ca.p12") == 0o600  # the same key, in PKCS#12


def test_provided_ca_replaces_a_generated_one_and_its_pkcs12_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ensure_ca(data)
    (data / CA_KEY_NAME).chmod(0o644)  # as an older hookwall might have left it
    ensure_ca(data, _operator_ca(tmp_path))
    assert mode(data / CA_KEY_NAME) == 0o600
    assert not (data / "mitmproxy-ca.p12").exists()  # the old key is not left behind
