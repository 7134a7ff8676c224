"""Access control, the pure part: who sent this request, and may they use hookwall at all?

- ``authenticate`` reads ``Proxy-Authorization`` (``Basic base64(name:token)``, what
  ``HTTP_PROXY=http://name:token@host:port`` produces, or ``Bearer token``) against the
  policy's senders, then checks the sender's ``clients`` CIDRs. One keyed HMAC and one dict
  lookup per check (access/settings.py): cheap enough for the event loop, and the same work
  whether a sender name exists or not.
- ``identify`` names the sender of a request that carries no credentials, where the
  operator said how: the listener's ``--sender NAME``, or (a transparent listener, whose
  senders do not know they are proxied) the one sender whose ``clients`` contain the address.
- ``listen_refusal`` keeps hookwall from ever being an open proxy: without senders it listens
  on loopback only, unless the operator says ``--allow-unauthenticated``.

Nothing here echoes what a sender sent: a malformed header may be a token pasted in the wrong
place, so messages describe the problem, never the value.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from hookwall.access.settings import Sender, SenderTable
from hookwall.core.denials import PROXY_AUTHENTICATE, Denial, Reason
from hookwall.core.exchange import Exchange

if TYPE_CHECKING:
    from hookwall.policy.model import Policy

__all__ = [
    "CHALLENGE",
    "MAX_HEADER_BYTES",
    "AccessResult",
    "authenticate",
    "dropped_authentication_refusal",
    "identify",
    "is_loopback_listen",
    "listen_refusal",
    "reload_drops_authentication",
    "sender_problem",
]

CHALLENGE = PROXY_AUTHENTICATE  # sent with every 407 (core/denials.py)
MAX_HEADER_BYTES = 4096
_HOW = (
    "send Proxy-Authorization: Basic base64(name:token) (what HTTP_PROXY=http://name:token@"
    "host:port does) or Bearer token"
)


@dataclass(frozen=True, slots=True)
class AccessResult:
    """The outcome for one request (or one CONNECT and its tunnel)."""

    sender: str | None  # the authenticated sender; None without senders or on failure
    denial: Denial | None = None  # auth-required or sender-denied
    would_deny: tuple[tuple[Reason, str], ...] = ()  # report-only (reason, message)
    attempted: str | None = None  # a *configured* sender name that failed (safe to log)

    @property
    def allowed(self) -> bool:
        return self.denial is None


def _required(message: str, attempted: str | None = None) -> AccessResult:
    return AccessResult(None, Denial(Reason.AUTH_REQUIRED, message), attempted=attempted)


def _malformed(detail: str) -> AccessResult:
    return _required(f"the Proxy-Authorization header is malformed ({detail}); {_HOW}")


_INVALID = "the proxy credentials are not valid"


def authenticate(
    table: SenderTable, exchange: Exchange, now: datetime | None = None
) -> AccessResult:
    """Judge a request's proxy credentials (every ``Proxy-Authorization`` it carries) and its
    sender's address against the policy's senders. With no senders defined, nobody
    authenticates (the listen address keeps hookwall private).
    """
    if not table:
        return AccessResult(None)
    header_values = exchange.header_values("proxy-authorization")
    if not header_values:
        return _required(f"hookwall requires proxy credentials; {_HOW}")
    if len(header_values) > 1:
        return _malformed("more than one Proxy-Authorization header")
    value = header_values[0]
    if len(value) > MAX_HEADER_BYTES:
        return _malformed(f"longer than {MAX_HEADER_BYTES} bytes")
    parts = value.split(None, 1)  # the scheme, any whitespace, the credentials
    if not parts:
        return _malformed("empty header")
    scheme, rest = parts[0], parts[1] if len(parts) > 1 else ""
    now = now or datetime.now(UTC)
    match scheme.lower():
        case "basic":
            found, attempted, problem = _basic(table, rest.strip(), now)
        case "bearer":
            found, attempted, problem = _bearer(table, rest.strip(), now)
        case _:  # never echo the scheme: a bare token would be "the scheme"
            return _malformed("unsupported scheme; use Basic or Bearer")
    if problem is not None:
        return _malformed(problem)
    if found is None:
        return _required(_INVALID, attempted)
    return _check_client(found, exchange.client)


def _basic(
    table: SenderTable, payload: str, now: datetime
) -> tuple[Sender | None, str | None, str | None]:
    """(sender, attempted configured name, malformed detail)."""
    if not payload:
        return None, None, "empty Basic credentials"
    try:
        userpass = base64.b64decode(payload.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None, None, "the Basic credentials are not valid base64"
    name, colon, token = userpass.partition(b":")
    if not colon:
        return None, None, "the Basic credentials have no ':' between name and token"
    if not name or not token:
        return None, None, "the Basic credentials have an empty name or token"
    found = table.verify_basic(userpass, now)
    # Only a name the policy defines is safe to log: an unknown "name" may be a pasted token.
    name_text = name.decode("utf-8", errors="replace")
    attempted = name_text if name_text in table else None
    return found, attempted, None


def _bearer(
    table: SenderTable, token: str, now: datetime
) -> tuple[Sender | None, str | None, str | None]:
    if not token:
        return None, None, "empty Bearer token"
    if any(ch.isspace() for ch in token):
        return None, None, "the Bearer token contains whitespace"
    return table.verify_bearer(token.encode("utf-8", errors="surrogateescape"), now), None, None


def _check_client(sender: Sender, client_ip: str | None) -> AccessResult:
    if not sender.clients:
        return AccessResult(sender.name)
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        address = None
    if address is not None and sender.allows_client(address):
        return AccessResult(sender.name)
    message = f"sender {sender.name!r} may not connect from {client_ip}"
    if sender.enforce:
        return AccessResult(sender.name, Denial(Reason.SENDER_DENIED, message))
    return AccessResult(sender.name, would_deny=((Reason.SENDER_DENIED, message),))


def identify(
    table: SenderTable, exchange: Exchange, default_sender: str | None, transparent: bool
) -> AccessResult | None:
    """The sender of a request without proxy credentials, or None to ``authenticate`` it.

    With ``default_sender`` (``--sender``), a request without credentials is that sender's
    (its ``clients`` still apply); one with credentials is judged by them. A transparent
    listener's sender is known by its address: the sender whose ``clients`` hold it, the
    most specific network winning; no such sender is a refusal that says how to name one.
    """
    if not table or exchange.header_values("proxy-authorization"):
        return None
    if default_sender is not None:
        sender = table.get(default_sender)
        if sender is None:  # a reload cannot drop it (sender_problem); fail closed anyway
            return _required(f"the sender {default_sender!r} given by --sender is not defined")
        return _check_client(sender, exchange.client)
    if not transparent:
        return None
    try:
        address = ipaddress.ip_address(exchange.client or "")
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client on a dual-stack listener
    best: tuple[int, Sender] | None = None
    if address is not None:
        for sender in table:
            for prefix in (n.prefixlen for n in sender.clients if address in n):
                if best is None or prefix > best[0]:
                    best = (prefix, sender)
    if best is None:
        message = (
            f"no sender of the policy has {exchange.client} among its clients, and a "
            "transparent listener cannot ask for credentials; add the address to a sender's "
            "clients: or start this listener with --sender NAME"
        )
        return AccessResult(None, Denial(Reason.SENDER_DENIED, message))
    return AccessResult(best[1].name)


def sender_problem(default_sender: str | None, policy: Policy) -> str | None:
    """Why ``--sender NAME`` cannot be used with ``policy`` (at start and on every reload)."""
    if default_sender is None or default_sender in policy.senders:
        return None
    defined = ", ".join(sorted(s.name for s in policy.senders))
    if not defined:
        return (
            f"--sender {default_sender}: the policy defines no senders; define "
            f"{default_sender} under senders: (with its clients:), or leave --sender out"
        )
    return (
        f"--sender {default_sender}: the policy defines no sender of that name (defined: "
        f"{defined}); add it under senders:, or start hookwall with one of those"
    )


# -- start-up ------------------------------------------------------------------------------------


def is_loopback_listen(host: str) -> bool:
    """True when ``host`` (a ``--listen`` host) can only be reached from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # another name: it may resolve to anything
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def listen_refusal(host: str, has_senders: bool, allow_unauthenticated: bool) -> str | None:
    """Why hookwall must not start on ``host``, or None. An open proxy is never the default."""
    if has_senders or allow_unauthenticated or is_loopback_listen(host):
        return None
    return (
        f"refusing to listen on {host or 'all addresses'} without authentication: anyone who "
        "can reach that address could use hookwall as an open proxy. Define senders in the "
        "policy (senders: with credentials; see README, 'Senders and access control'), listen "
        "on 127.0.0.1, or pass --allow-unauthenticated if a firewall already keeps everyone "
        "else out"
    )


# -- reload ----------------------------------------------------------------------------------


def reload_drops_authentication(old: Policy, new: Policy) -> bool:
    """True when a reload from ``old`` to ``new`` would stop asking for proxy credentials.

    The dangerous case is a policy directory that lost its senders file (a partial ConfigMap
    update, a rename): the rest still loads, and hookwall would silently serve anyone on
    loopback. Such a reload is refused unless ``new`` states ``senders: none``.
    """
    return bool(old.senders) and not new.senders


def dropped_authentication_refusal(path: str, old: Policy) -> str:
    """The ``policy_rejected`` error for a reload that lost its senders without saying so."""
    names = ", ".join(sorted(s.name for s in old.senders))
    return (
        f"{path}: senders: the new policy defines no senders, so hookwall would stop asking for "
        f"proxy credentials (senders in force: {names}); a senders file may be missing from "
        "the policy directory. Restore the senders, or write 'senders: none' in the policy to "
        "drop authentication on purpose"
    )
