"""hookwall's own CA (for intercepting CONNECT tunnels) and the upstream trust bundle."""

from __future__ import annotations

import os
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import certs

from hookwall.core.files import narrow, write_private

CA_BASENAME = "mitmproxy"  # the file names mitmproxy's tlsconfig expects in its confdir
CA_CERT_NAME = f"{CA_BASENAME}-ca-cert.pem"
CA_KEY_NAME = f"{CA_BASENAME}-ca.pem"  # the certificate and its private key
SECRET_FILES = (CA_KEY_NAME, f"{CA_BASENAME}-ca.p12")  # mode 0600
KEY_SIZE = 2048


def ca_cert_path(data_dir: Path) -> Path:
    """The certificate senders must trust (public; the key stays in the data dir, mode 0600)."""
    return data_dir / CA_CERT_NAME


def ensure_ca(data_dir: Path, provided: Path | None = None) -> Path:
    """Create the CA once, named for hookwall so it is recognisable in trust stores; or use
    the operator's (``--ca``: one CA shared by every replica, e.g. from a Kubernetes Secret)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if provided is not None:
        install_ca(data_dir, provided)
    elif not (data_dir / CA_KEY_NAME).exists():
        # mitmproxy creates the key files (PEM and PKCS#12) under a 0077 umask: 0600 from
        # the start (tests/unit/core/test_files.py checks it with every chmod disabled).
        certs.CertStore.create_store(
            data_dir, CA_BASENAME, KEY_SIZE, organization="hookwall", cn="hookwall egress CA"
        )
    for name in SECRET_FILES:  # left wider by an older hookwall
        narrow(data_dir / name)
    return ca_cert_path(data_dir)


def install_ca(data_dir: Path, provided: Path) -> None:
    """Copy a CA (certificate and private key, PEM) where mitmproxy reads it, plus its cert."""
    try:
        pem = provided.read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"hookwall: --ca {provided}: expected one PEM file with the CA certificate and its "
            f"unencrypted private key ({exc})"
        ) from None
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise SystemExit(
            f"hookwall: --ca {provided}: the private key does not match the certificate"
        )
    write_private(data_dir / CA_KEY_NAME, pem)  # created 0600, never readable by others
    # A CA hookwall generated before holds its key in PKCS#12 too; it is not this CA's.
    (data_dir / f"{CA_BASENAME}-ca.p12").unlink(missing_ok=True)
    _write_public(ca_cert_path(data_dir), cert.public_bytes(serialization.Encoding.PEM))


def _write_public(path: Path, data: bytes) -> None:
    """Replace a public file atomically (mitmproxy or a sender may be reading it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def upstream_ca_bundle(data_dir: Path, extra_bundle: str | None) -> Path:
    """certifi's roots, plus the policy's extra CAs; receivers are verified against this."""
    if not extra_bundle:
        return Path(certifi.where())
    combined = data_dir / "upstream-ca-bundle.pem"
    text = Path(certifi.where()).read_text() + "\n" + Path(extra_bundle).read_text()
    tmp = combined.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(combined)
    return combined
