"""The Public Suffix List: where anyone may register a name (``com``, ``co.uk``, ``github.io``).

The list comes from ``publicsuffixlist`` (MPL-2.0, its bundled list is updated with every
weekly release; upgrade the pin to refresh it). Both sections of the list count, as in
browsers: ``github.io`` (PRIVATE section) is a public suffix like ``co.uk`` (ICANN section).
A TLD missing from the list (``.test``, ``.internal``, ``.local``, a new gTLD) follows the
list's implicit ``*`` rule: it is a public suffix itself.
"""

from __future__ import annotations

from functools import cache

from publicsuffixlist import PublicSuffixList

__all__ = ["is_public_suffix", "preload", "registrable_domain"]


@cache
def _list() -> PublicSuffixList:
    """Parsed once (about 0.2 s): ``preload`` does it at proxy start, off the request path."""
    return PublicSuffixList(accept_unknown=True, only_icann=False)


def preload() -> None:
    """Parse the list now, so the first lookup does not stall the event loop."""
    _list()


def registrable_domain(name: str) -> str | None:
    """The eTLD+1 of a lower-case host name; None when the name is itself a public suffix."""
    found: str | None = _list().privatesuffix(name)
    return found


def is_public_suffix(name: str) -> bool:
    """Whether anyone may register names directly under ``name`` (``co.uk``, ``test``)."""
    return bool(_list().is_public(name.rstrip(".").lower()))
