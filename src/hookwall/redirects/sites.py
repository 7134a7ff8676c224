"""Same-site judgement for ``redirects.scope: same_site``: the registrable domain (eTLD+1).

The Public Suffix List comes from ``publicsuffixlist`` (MPL-2.0, its bundled list is updated
with every weekly release; upgrade the pin to refresh it). Both sections of the list count, as
in browsers: ``github.io`` (PRIVATE section) is a public suffix like ``co.uk`` (ICANN section),
so ``acme.github.io`` and ``evil.github.io`` are different sites. A TLD missing from the list
(``.test``, ``.internal``, ``.local``, a new gTLD) follows the list's implicit ``*`` rule: it
is a public suffix, so ``a.test`` and ``b.test`` are different sites, while ``x.a.test`` and
``y.a.test`` are one. An IP literal is its own site.
"""

from __future__ import annotations

import ipaddress
from functools import cache

from publicsuffixlist import PublicSuffixList


@cache
def _list() -> PublicSuffixList:
    """Parsed once (about 0.2 s): ``preload`` does it at proxy start, off the request path."""
    return PublicSuffixList(accept_unknown=True, only_icann=False)


def preload() -> None:
    """Parse the list now, so the first same_site redirect does not stall the event loop."""
    _list()


def site_of(host: str) -> str:
    """The site of a canonical host name: its eTLD+1, the host itself when it is a public
    suffix (``co.uk``, ``test``) or an IP literal."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return _list().privatesuffix(host) or host


def same_site(a: str, b: str) -> bool:
    """Whether two canonical host names belong to the same site."""
    return site_of(a) == site_of(b)
