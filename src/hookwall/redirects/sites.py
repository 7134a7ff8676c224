"""Same-site judgement for ``redirects.scope: same_site``: the registrable domain (eTLD+1).

On the Public Suffix List (``destinations/suffixes.py``), both of its sections, as in browsers:
``acme.github.io`` and ``evil.github.io`` are different sites. A TLD missing from the list
(``.test``, ``.internal``, ``.local``) is a public suffix, so ``a.test`` and ``b.test`` are
different sites, while ``x.a.test`` and ``y.a.test`` are one. An IP literal is its own site.
"""

from __future__ import annotations

import ipaddress

from hookwall.destinations.suffixes import preload, registrable_domain

__all__ = ["preload", "same_site", "site_of"]


def site_of(host: str) -> str:
    """The site of a canonical host name: its eTLD+1, the host itself when it is a public
    suffix (``co.uk``, ``test``) or an IP literal."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return registrable_domain(host) or host


def same_site(a: str, b: str) -> bool:
    """Whether two canonical host names belong to the same site."""
    return site_of(a) == site_of(b)
