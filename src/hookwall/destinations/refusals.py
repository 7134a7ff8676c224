"""Where a refused CONNECT is answered: on the CONNECT itself, or inside the TLS session.

Most HTTPS clients report a refused CONNECT only as "tunnel failed: 403" (httpx's
``ProxyError``, requests' ``Tunnel connection failed``, undici's ``Request was cancelled``,
Go's ``Forbidden``): the reason, the JSON body and the request id are lost. So, for a
destination hookwall intercepts anyway, a CONNECT the destination decision refuses is
accepted, hookwall completes TLS with its own certificate for the name, and the first request
inside is answered with the refusal. Nothing is ever sent upstream (no receiver connection is
opened: mitmproxy's ``connection_strategy`` is lazy, and the guard's ``server_connect``
check refuses any address no decision approved).

What stays on the CONNECT: a passthrough destination (hookwall has no certificate of its own
to speak for it), ``connect_refusals: on-connect``, and every refusal that is not the
destination decision's: access control (``407 auth-required`` is the proxy-auth protocol,
``403 sender-denied`` is about the sender, not the destination) and hookwall's own failures.
"""

from __future__ import annotations

from typing import Literal

from hookwall.core.denials import Reason
from hookwall.destinations.decide import Decision
from hookwall.policy import Settings

__all__ = ["INSIDE_TLS_REASONS", "AnsweredAt", "answered_at"]

AnsweredAt = Literal["inside-tls", "on-connect"]

# The destination decision's refusals: about the host or port asked for, the same for every
# sender. ``sender-denied`` (a rule scoped to other senders) is access control.
INSIDE_TLS_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.ADDRESS_BLOCKED,
        Reason.HOST_DENIED,
        Reason.PORT_DENIED,
        Reason.INVALID_HOST,
        Reason.DNS_FAILED,
        Reason.INTERNAL_ERROR,  # the decision could not be made: refused, fail closed
    }
)


def answered_at(decision: Decision, defaults: Settings) -> AnsweredAt:
    """Where the refusal of a refused CONNECT is answered. The settings are those of the rule
    that applies to the host asked for; a host with no rule of its own (or none at all: an
    invalid host) falls under ``defaults``."""
    if decision.allowed or decision.reason not in INSIDE_TLS_REASONS:
        return "on-connect"
    settings = decision.settings or defaults
    if settings.tls != "intercept" or settings.connect_refusals != "inside-tls":
        return "on-connect"
    return "inside-tls"
