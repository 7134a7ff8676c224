"""hookwall.invalid, the pure part: which requests are for it, and what hookwall answers them.

Like mitmproxy's ``mitm.it``, but under the reserved ``.invalid`` TLD (RFC 6761 6.4: never a
real host, so no receiver can be meant by it): a sender asks ``http://hookwall.invalid/whoami``
(or ``https://`` through a CONNECT) to see that its requests reach hookwall, as which sender,
over which listener mode and, over TLS, that it completed a handshake with hookwall's
certificate. Nothing is resolved and nothing leaves hookwall.

The answers are plain values (``Answer``); ``selfanswer/addon.py`` gathers the facts from the
flow (``Asker``, ``OwnCA``) and writes the answer back. They are a server's answers, not
refusals: no ``X-Hookwall-Reason``, and the exchange event says ``decision: allow``, ``reason:
null`` and the status hookwall answered with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hookwall.destinations.hostname import InvalidHost, canonicalize_host

NAME = "hookwall.invalid"
METHODS = ("GET", "HEAD")
# What a client completing the TLS handshake tells hookwall: that it went on after seeing the
# certificate, not that it verified it (curl -k completes the same handshake).
CA_SEEN = (
    "the client completed the TLS handshake with hookwall's certificate; hookwall cannot tell "
    "whether it verified it: compare ca_sha256 with the CA you trust"
)
_NO_STORE = (("Cache-Control", "no-store"),)  # an answer about this request, never cached
PATHS: dict[str, str] = {
    "/": "what hookwall.invalid is",
    "/whoami": "how hookwall saw this request: sender, listener mode, client address, TLS",
    "/ca.pem": "hookwall's CA certificate (public), for senders to trust; compare ca_sha256",
}


@dataclass(frozen=True, slots=True)
class Asker:
    """What hookwall knows about the request that asked (the adapter reads it off the flow)."""

    request_id: str
    sender: str | None  # the authenticated sender, None without one
    senders_required: bool  # the policy defines senders (an unauthenticated request gets 407)
    would_deny: tuple[str, ...]  # report-only access codes (senders with ``enforce: false``)
    mode: str  # the listener's mode: "regular" (explicit proxy), "transparent", ...
    client: str | None  # "ip:port" as hookwall saw it
    tls: bool  # the request came inside TLS that hookwall terminated


@dataclass(frozen=True, slots=True)
class OwnCA:
    """hookwall's CA certificate: what ``/ca.pem`` serves and ``ca_sha256`` names."""

    pem: bytes
    sha256: str  # "AB:CD:...", as ``openssl x509 -noout -fingerprint -sha256`` prints it


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes  # what a GET gets; a HEAD gets the same headers and no body (the adapter)


def is_hookwall_name(host: str) -> bool:
    """Whether ``host`` names hookwall.invalid, in any spelling the guard would accept for it
    (``HOOKWALL.INVALID.``); a host that cannot be canonicalised is not it."""
    try:
        return canonicalize_host(host).text == NAME
    except InvalidHost:
        return False


def fingerprint(digest: bytes) -> str:
    """A certificate's SHA-256 digest as ``openssl x509 -noout -fingerprint -sha256`` prints it."""
    return ":".join(f"{b:02X}" for b in digest)


def answer(method: str, target: str, asker: Asker, ca: OwnCA | None) -> Answer:
    """hookwall's answer to ``method target`` (origin-form; a query is ignored)."""
    path = target.partition("?")[0].partition("#")[0] or "/"
    if method.upper() not in METHODS:
        return _json(
            405,
            {
                "error": "method-not-allowed",
                "message": f"{NAME} answers GET and HEAD only",
                "request_id": asker.request_id,
            },
            extra=(("Allow", ", ".join(METHODS)),),
        )
    if path == "/whoami":
        return _json(200, whoami(asker, ca))
    if path == "/":
        return _json(200, about())
    if path == "/ca.pem":
        if ca is None:
            message = "hookwall has no CA loaded; on its host, `hookwall ca` prints it"
            return _json(503, {"error": "no-ca", "message": message})
        return Answer(200, (("Content-Type", "application/x-pem-file"), *_NO_STORE), ca.pem)
    return _json(
        404,
        {
            "error": "not-found",
            "message": f"{NAME} has no {path[:100]!r}; it answers the paths listed",
            "paths": list(PATHS),
            "request_id": asker.request_id,
        },
    )


def whoami(asker: Asker, ca: OwnCA | None) -> dict[str, Any]:
    """The document of ``/whoami``: how hookwall saw this request."""
    return {
        "through_hookwall": True,
        "request_id": asker.request_id,
        "sender": asker.sender,
        "senders_required": asker.senders_required,
        "would_deny": list(asker.would_deny),
        "mode": asker.mode,
        "client": asker.client,
        "tls": asker.tls,
        "ca": CA_SEEN if asker.tls else None,
        "ca_sha256": ca.sha256 if ca is not None else None,
    }


def about() -> dict[str, Any]:
    """The document of ``/``: what this name is."""
    return {
        "name": NAME,
        "what": (
            "a name hookwall answers itself (.invalid is reserved by RFC 6761: never a real "
            "host); nothing is resolved or sent anywhere. Ask it through hookwall to check a "
            "sender's set-up; `hookwall doctor` does."
        ),
        "paths": PATHS,
    }


def _json(status: int, document: dict[str, Any], extra: tuple[tuple[str, str], ...] = ()) -> Answer:
    # ensure_ascii (the default): a hostile path, lone surrogates included, stays ASCII text
    body = json.dumps(document, indent=2).encode() + b"\n"
    headers = (("Content-Type", "application/json"), *_NO_STORE, *extra)
    return Answer(status, headers, body)
