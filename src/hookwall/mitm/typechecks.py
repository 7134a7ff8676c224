"""Skip mitmproxy's debug-build type check of every HTTP message it creates.

``mitmproxy.http.MessageData.__post_init__`` runs ``typecheck.check_option_type`` over every
field of every request and response, but only ``if __debug__``: mitmproxy means it as an
assertion, off under ``python -O``. hookwall cannot run with ``-O`` (its own asserts guard
invariants), and the check costs ~9% of the proxy's CPU per request (``bench/PROFILE.md``).
Messages come from mitmproxy's parsers and from ``Response.make`` in type-checked code
(``mypy --strict``), so this turns off only the assertion, not a validation of input.
"""

from __future__ import annotations

from mitmproxy import http


def _skip(self: object) -> None:
    """Nothing: the dataclass ``__init__`` still calls ``__post_init__``, so it must exist."""


def install() -> None:
    """Idempotent; applies to every message created afterwards."""
    http.MessageData.__post_init__ = _skip  # type: ignore[method-assign]
