"""The destination decision: may a webhook go to host:port, and to which exact IP.

One function, `decide`, serves the proxy (CONNECT and plain HTTP alike) and `hookwall explain`,
so what `explain` prints is what the proxy does. It never raises: any failure is a denial.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Container
from dataclasses import dataclass, field

from hookwall.core.denials import Reason
from hookwall.destinations.addresses import IPAddress
from hookwall.destinations.hostname import InvalidHost, canonicalize_host
from hookwall.destinations.resolver import DnsFailure, Resolver
from hookwall.policy import Policy, Settings

LOOPBACK_ANSWERS: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    """One address the destination resolved to, and what the blocklist said of it."""

    address: IPAddress
    allowed: bool
    why: str


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason | None  # the code when denied (core/denials.py)
    message: str  # one human sentence
    host: str  # canonical host text (the raw text when it could not be canonicalised)
    port: int
    settings: Settings | None = None
    answers: tuple[AnswerCheck, ...] = ()
    pinned_ip: IPAddress | None = None
    dns_ms: float | None = None
    dns_source: str = ""  # "literal", "loopback-name", "dns", "cache"
    notes: tuple[str, ...] = field(default=())
    # Report-only access verdicts, (reason, message): logged as would_deny, not enforced.
    would_deny: tuple[tuple[Reason, str], ...] = ()
    sender: str | None = None  # the sender this was judged for

    @property
    def rule(self) -> str | None:
        return self.settings.rule.name if self.settings and self.settings.rule else None

    @property
    def resolved_ips(self) -> list[str]:
        return [str(a.address) for a in self.answers]


def _deny(reason: Reason, message: str, host: str, port: int, **extra: object) -> Decision:
    return Decision(False, reason, message, host, port, **extra)  # type: ignore[arg-type]


async def decide(
    raw_host: str,
    port: int,
    policy: Policy,
    resolver: Resolver,
    *,
    self_addresses: Container[tuple[IPAddress, int]] = (),
    sender: str | None = None,
) -> Decision:
    """Judge a destination for ``sender`` (an authenticated sender's name, or None when the
    policy defines no senders). Fails closed: an unexpected error is an ``internal-error``
    denial."""
    try:
        return await _decide(raw_host, port, policy, resolver, self_addresses, sender)
    except Exception as exc:
        return _deny(
            Reason.INTERNAL_ERROR,
            f"hookwall could not judge this destination ({type(exc).__name__}: {exc}); "
            "refused to be safe",
            raw_host,
            port,
        )


async def _decide(
    raw_host: str,
    port: int,
    policy: Policy,
    resolver: Resolver,
    self_addresses: Container[tuple[IPAddress, int]],
    sender: str | None,
) -> Decision:
    try:
        host = canonicalize_host(raw_host)
    except InvalidHost as exc:
        return _deny(Reason.INVALID_HOST, str(exc), raw_host, port, sender=sender)

    selection = policy.select(host.text, sender)
    settings = selection.settings
    access = {
        "sender": sender,
        "would_deny": tuple((v.reason, v.message) for v in selection.would_deny),
    }
    if selection.denial is not None:
        reason, message = selection.denial.reason, selection.denial.message
        return _deny(reason, message, host.text, port, settings=settings, **access)
    if settings.action == "deny":
        where = f"rule {settings.rule.name!r} ({settings.rule.location})" if settings.rule else ""
        return _deny(
            Reason.HOST_DENIED,
            f"{host.text} is denied by {where}".strip(),
            host.text,
            port,
            settings=settings,
            **access,
        )

    dns_ms: float | None = None
    addresses: tuple[IPAddress, ...]
    if host.ip is not None:
        addresses, source = (host.ip,), "literal"
    elif host.loopback_name:
        addresses, source = LOOPBACK_ANSWERS, "loopback-name"
    else:
        started = time.perf_counter()
        try:
            resolution = await resolver.resolve(host.text)
        except DnsFailure as exc:
            return _deny(
                Reason.DNS_FAILED,
                f"could not resolve {host.text}: {exc}",
                host.text,
                port,
                settings=settings,
                dns_ms=(time.perf_counter() - started) * 1000,
                **access,
            )
        dns_ms = (time.perf_counter() - started) * 1000
        addresses = resolution.addresses
        source = "cache" if resolution.cached else "dns"

    network = settings.network
    answers = tuple(
        AnswerCheck(a, v.allowed, v.explain())
        for a, v in ((a, network.check(a)) for a in addresses)
    )
    common = {"settings": settings, "answers": answers, "dns_ms": dns_ms, "dns_source": source}
    common |= access
    blocked = [a for a in answers if not a.allowed]
    if blocked:
        why = blocked[0].why
        if source == "loopback-name":
            why = f"{host.text} is a loopback name; {why}"
        elif source != "literal":
            why = f"{host.text} resolves to {blocked[0].address}; {why}"
        return _deny(Reason.ADDRESS_BLOCKED, why, host.text, port, **common)
    # Ports are judged after addresses so `localhost:3000` says what is really wrong with it.
    if not 0 < port < 65536 or port not in settings.network.ports:
        return _deny(
            Reason.PORT_DENIED,
            f"port {port} is not allowed for {host.text} (allowed: {settings.network.ports})",
            host.text,
            port,
            **common,
        )

    pinned = next((a.address for a in answers if a.address.version == 4), answers[0].address)
    if (pinned, port) in self_addresses:
        return _deny(
            Reason.ADDRESS_BLOCKED,
            f"{pinned}:{port} is hookwall's own listening address (no loops through the proxy)",
            host.text,
            port,
            **common,
        )
    return Decision(
        True,
        None,
        f"{host.text}:{port} allowed; connecting to {pinned}",
        host.text,
        port,
        pinned_ip=pinned,
        **common,  # type: ignore[arg-type]
    )


def judge_dialled(
    decision: Decision,
    dialled: IPAddress,
    self_addresses: Container[tuple[IPAddress, int]] = (),
) -> Decision:
    """A redirected connection's own destination, judged beside its name.

    On a transparent listener the sender dialled an address before the kernel redirected it
    to hookwall. hookwall never connects there (it connects to the address it resolved and
    checked for the name), but a sender that dialled a blocked address was reaching for it:
    ``curl http://127.0.0.1:3000 -H 'Host: allowed.example'`` is refused, not delivered. The
    address is judged by the network rules of the rule the name selected; a connection
    dialled to hookwall's own listener was not redirected at all, and is refused too.
    """
    if not decision.allowed or decision.settings is None:
        return decision
    port = decision.port
    if (dialled, port) in self_addresses:
        message = (
            f"this connection was made to hookwall's own transparent listener {dialled}:{port} "
            "instead of being redirected to it: a transparent listener serves connections the "
            "kernel redirects (hookwall redirect-rules); send proxy requests to the explicit "
            "listener (HTTP_PROXY) instead"
        )
        return _refused(decision, message)
    verdict = decision.settings.network.check(dialled)
    if verdict.allowed:
        return decision
    message = (
        f"the connection was dialled to {dialled}, which is blocked ({verdict.explain()}); "
        f"hookwall would have connected to {decision.pinned_ip} for {decision.host}, but a "
        "request dialled to a blocked address is refused"
    )
    return _refused(decision, message)


def _refused(decision: Decision, message: str) -> Decision:
    return dataclasses.replace(
        decision, allowed=False, reason=Reason.ADDRESS_BLOCKED, message=message, pinned_ip=None
    )
