"""After a reload: may a tunnel opened under the old policy go on under the new one?

A ``tls: passthrough`` tunnel carries bytes hookwall never reads, so there is no next request
at which to judge it again (intercepted tunnels are judged at their next request, in the
guard). The reload judges each one at once instead, by what its CONNECT was judged on: the
sender, the client address, the host and port, and the address it is connected to. A tunnel
the new policy would not open is closed. Plain functions, no mitmproxy: the adapter is
``destinations/addons/tunnels.py``.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from hookwall.access.settings import Sender, SenderTable
from hookwall.core.denials import Denial, Reason
from hookwall.destinations.addresses import IPAddress
from hookwall.destinations.decide import Decision
from hookwall.policy.model import Settings

__all__ = ["pinned_after_reload", "sender_after_reload", "tokens_kept", "tunnel_after_reload"]


def sender_after_reload(
    before: Sender | None, senders: SenderTable, name: str | None, client: str | None
) -> Denial | None:
    """Whether the tunnel's sender may still use hookwall under the new ``senders``.

    ``before`` is the sender as the old policy had it (None when no credentials were asked).
    Closed when credentials are now required and the tunnel had none, when the sender is gone,
    when one of its tokens was removed or has expired (the tunnel may have opened with it: a
    revoked token must not keep a tunnel open; adding a token changes nothing), or when the
    client address is outside its new ``clients``. Where the sender is written (its file and
    line) does not matter.
    """
    if name is None:
        if senders:
            return Denial(
                Reason.AUTH_REQUIRED,
                "the policy changed: proxy credentials are now required; open a new tunnel "
                "with them",
            )
        return None
    now = senders.get(name)
    if not tokens_kept(before, now):
        return Denial(
            Reason.AUTH_REQUIRED,
            "the policy changed: open a new tunnel with valid proxy credentials",
        )
    assert now is not None  # tokens_kept
    address = _address(client)
    if now.enforce and (address is None or not now.allows_client(address)):
        return Denial(
            Reason.SENDER_DENIED,
            "the policy changed: this sender may not connect from this address",
        )
    return None


def tunnel_after_reload(decision: Decision, pinned: IPAddress | None) -> Denial | None:
    """Whether the new policy's ``decision`` for the tunnel's host and port still covers it.

    ``pinned`` is the address the tunnel is connected to: the new decision may resolve the
    name afresh, but what counts is where the bytes go now.
    """
    if not decision.allowed or decision.settings is None:
        reason = decision.reason or Reason.INTERNAL_ERROR
        return Denial(reason, f"the policy changed: {decision.message}")
    refusal = pinned_after_reload(decision.settings, pinned, decision.host)
    if refusal is not None:
        return refusal
    if decision.settings.tls != "passthrough":
        return Denial(
            Reason.HOST_DENIED,
            f"the policy changed: {decision.host} is no longer passed through (tls: "
            f"{decision.settings.tls}); open a new tunnel",
        )
    return None


def pinned_after_reload(settings: Settings, pinned: IPAddress | None, host: str) -> Denial | None:
    """The address a tunnel (passed through or intercepted) is connected to, judged under the
    new policy's settings for its host: it carries on only while that address is allowed."""
    if pinned is None or not settings.network.check(pinned).allowed:
        return Denial(
            Reason.ADDRESS_BLOCKED, f"the policy changed: {pinned} is no longer allowed for {host}"
        )
    return None


def tokens_kept(before: Sender | None, now: Sender | None) -> bool:
    """Every token ``before`` accepted is still one of ``now``'s and valid: whichever the
    connection authenticated with still works. Adding a token, or moving the sender to
    another file or line, keeps them; removing, changing or expiring one does not."""
    if before is None or now is None:
        return False
    return _tokens(before) <= _tokens(now)


def _tokens(sender: Sender) -> set[bytes]:
    """The sender's tokens valid now, as digests (a changed secret is a new digest)."""
    now = datetime.now(UTC)
    return {c.bearer for c in sender.credentials if c.valid_at(now)}


def _address(text: str | None) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text) if text else None
    except ValueError:
        return None
