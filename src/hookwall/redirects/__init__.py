"""Redirect policy: whether a receiver's 3xx is refused, relayed or followed (pure)."""

from hookwall.redirects.decide import REDIRECT_STATUSES, Chain, RedirectDecision, decide_redirect
from hookwall.redirects.settings import RedirectSettings

__all__ = [
    "REDIRECT_STATUSES",
    "Chain",
    "RedirectDecision",
    "RedirectSettings",
    "decide_redirect",
]
