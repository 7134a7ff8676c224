"""Process-wide bounds that live outside the addons, set at start and on every reload."""

from __future__ import annotations

import math

from hookwall.mitm import http1guard
from hookwall.policy import Policy


def backstop_timeout(policy: Policy) -> int:
    """mitmproxy's inactivity timeout (``tcp_timeout``), a backstop behind hookwall's own
    deadlines: long enough never to cut an exchange they allow (``ConnectionGuard``)."""
    proxy = policy.proxy
    return math.ceil(max(proxy.idle_timeout, proxy.head_timeout) + policy.longest_quiet)


def apply_proxy_settings(policy: Policy) -> None:
    """The head caps of ``proxy:`` (``http1guard``)."""
    http1guard.configure(policy.proxy.max_header_bytes, policy.proxy.max_header_fields)
