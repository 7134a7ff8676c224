"""What every addon needs at run time: the current policy, the resolver, our own addresses.

The policy is an immutable object behind a single reference; a reload swaps the reference and
each flow keeps the snapshot it started with.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from mitmproxy import connection

from hookwall.deliveries import logs
from hookwall.destinations.resolver import Resolver
from hookwall.destinations.selfaddr import SelfAddresses
from hookwall.flow.transparent import is_transparent
from hookwall.limits import DestinationLimiter
from hookwall.limits.backend import Limiter
from hookwall.policy import Policy

INTERNAL_HOST = "127.0.0.1"  # the internal listener's address (hops and retries)


def _token() -> str:
    return secrets.token_hex(16)


@dataclass(slots=True)
class Runtime:
    policy: Policy
    resolver: Resolver
    self_addresses: SelfAddresses = field(default_factory=SelfAddresses)
    # Marks requests hookwall sends through itself (redirect hops); never leaves the process.
    internal_token: str = field(default_factory=_token)
    listen_addrs: list[tuple[str, int]] = field(default_factory=list)  # the public listeners
    # Where redirect hops and retries are sent: open until the drain has finished.
    internal_addrs: list[tuple[str, int]] = field(default_factory=list)
    # The internal listener's port: 0 (a free one), or, with --workers, the one the supervisor
    # reserved for this worker (it reserves one per worker, so each knows all of them).
    internal_port: int = 0
    # This process's; its share of the host's caps (--workers); or Redis (limits.backend).
    limiter: Limiter = field(default_factory=lambda: DestinationLimiter(on_event=log_limit_event))
    # --sender NAME: the sender of every request on the listeners that carries no credentials.
    default_sender: str | None = None

    def __post_init__(self) -> None:
        if not self.policy.secrets_read:  # fail closed: stand-ins are no one's secrets
            raise ValueError("a policy loaded without its secrets (--no-secrets) cannot be run")

    def on_internal_listener(self, client: connection.Client) -> bool:
        """Whether a client connection came to the internal listener. A transparent one never
        did, whatever it dialled: its ``sockname`` is the destination it was redirected from."""
        sockname = client.sockname
        if sockname is None or is_transparent(client):
            return False
        return tuple(sockname[:2]) in self.internal_addrs


def log_limit_event(key: str, event: str, fields: dict[str, object]) -> None:
    """Circuit state changes and receiver pauses are events operators want to see."""
    logs.get_logger().warning(event, destination=key, **fields)
