"""hookwall's own CA (for intercepting CONNECT tunnels) and the upstream trust bundle."""

from __future__ import annotations

import os
from pathlib import Path

import certifi
from mitmproxy import certs

CA_BASENAME = "mitmproxy"  # the file names mitmproxy's tlsconfig expects in its confdir
CA_CERT_NAME = f"{CA_BASENAME}-ca-cert.pem"
KEY_SIZE = 2048


def ca_cert_path(data_dir: Path) -> Path:
    """The certificate senders must trust (public; the key stays in the data dir, mode 0600)."""
    return data_dir / CA_CERT_NAME


def ensure_ca(data_dir: Path) -> Path:
    """Create the CA once, named for hookwall so it is recognisable in trust stores."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (data_dir / f"{CA_BASENAME}-ca.pem").exists():
        certs.CertStore.create_store(
            data_dir, CA_BASENAME, KEY_SIZE, organization="hookwall", cn="hookwall egress CA"
        )
    os.chmod(data_dir / f"{CA_BASENAME}-ca.pem", 0o600)
    return ca_cert_path(data_dir)


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
