"""What to do with a receiver's redirect, as a plain function of the response and the policy.

The Standard Webhooks spec advises treating a 3xx as a failure, so ``deny`` is the default:
a receiver answering ``302 Location: http://169.254.169.254/`` must never turn a webhook into a
request to an internal address. ``follow`` only decides whether a hop may be *attempted*; the
hop itself is then judged like any first request (host, DNS, blocklist, pinning, port, rule,
signing, limits) by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin, urlsplit

from hookwall.destinations.hostname import InvalidHost, canonicalize_host
from hookwall.redirects.settings import RedirectSettings
from hookwall.redirects.sites import same_site

# 300, 304 and 305/306 are not redirects a client follows automatically.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(slots=True)
class Chain:
    """The redirects followed so far for one delivery."""

    origin_host: str  # canonical host of the first request
    visited: list[str] = field(default_factory=list)  # URLs requested, in order

    @property
    def hops(self) -> int:
        return max(0, len(self.visited) - 1)


@dataclass(frozen=True, slots=True)
class RedirectDecision:
    action: Literal["follow", "deny", "pass", "none"]
    target: str | None = None  # absolute URL of the Location, when it could be read
    method: str | None = None  # for follow: the method of the next hop
    keep_body: bool = True
    message: str = ""


def decide_redirect(
    settings: RedirectSettings,
    chain: Chain,
    current_url: str,
    method: str,
    status: int,
    location: str | None,
) -> RedirectDecision:
    """Judge one 3xx answer to ``method current_url``; ``none`` when it is not a redirect."""
    if status not in REDIRECT_STATUSES:
        return RedirectDecision("none")
    if settings.mode == "pass":
        return RedirectDecision("pass", _absolute(current_url, location))
    if not location or not location.strip():
        return _deny(None, f"the receiver answered {status} without a Location header")
    target = _absolute(current_url, location)
    if target is None:
        return _deny(None, f"the receiver's Location {location[:200]!r} is not an http(s) URL")
    if settings.mode == "deny":
        return _deny(target, f"the receiver redirected ({status}) to {target}; redirects are "
                     "not followed for this destination: update the webhook URL")  # fmt: skip
    return _follow(settings, chain, current_url, method, status, target)


def _follow(
    settings: RedirectSettings, chain: Chain, current: str, method: str, status: int, target: str
) -> RedirectDecision:
    if chain.hops >= settings.max_hops:
        return _deny(target, f"more than {settings.max_hops} redirects; stopped at {target}")
    if target in chain.visited:
        return _deny(target, f"redirect loop: {target} was already requested in this chain")
    scheme = urlsplit(target).scheme
    if settings.https_only and scheme != "https":
        return _deny(target, f"redirect to {target} refused: only https targets are followed")
    if urlsplit(current).scheme == "https" and scheme == "http" and not settings.allow_downgrade:
        return _deny(target, f"redirect from https to http ({target}) refused (allow_downgrade)")
    try:
        host = canonicalize_host(urlsplit(target).hostname or "").text
    except InvalidHost as exc:
        return _deny(target, f"redirect to {target} refused: {exc}")
    if settings.scope == "same_host" and host != chain.origin_host:
        return _deny(target, f"redirect to another host ({host}) refused: scope is same_host")
    if settings.scope == "same_site" and not same_site(host, chain.origin_host):
        return _deny(target, f"redirect to another site ({host}) refused: scope is same_site")
    keep = status in (307, 308) or settings.method == "keep-method"
    next_method = method if keep else "GET"
    return RedirectDecision("follow", target, next_method, keep_body=keep)


def _absolute(current: str, location: str | None) -> str | None:
    """The Location resolved against the current URL; None unless it is http(s) with a host."""
    if not location:
        return None
    try:
        target = urljoin(current, location.strip())
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    # A Location with userinfo (even ``http://:secret@host/``) is never followed.
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return parts._replace(fragment="").geturl()


def _deny(target: str | None, message: str) -> RedirectDecision:
    return RedirectDecision("deny", target, message=message)
