"""A connect timeout for mitmproxy's upstream connections (mitmproxy has none).

mitmproxy opens every server connection with ``asyncio.open_connection`` inside
``mitmproxy.proxy.server`` and waits forever on a black-hole receiver. We give that module
its own view of ``asyncio`` whose ``open_connection`` is bounded by the destination's
``timeouts.connect``; everything else is the real asyncio. mitmproxy is pinned and
``tests/integration/test_flood.py`` fails if the hook point moves.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

from mitmproxy.proxy import server as mitm_server

from hookwall.flow.errorpages import CONNECT_TIMEOUT_MARK

TimeoutLookup = Callable[[str, int], float]


class _AsyncioWithConnectTimeout(types.ModuleType):
    def __init__(self, lookup: TimeoutLookup) -> None:
        super().__init__("asyncio")
        self._lookup = lookup

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def open_connection(self, host: str, port: int, **kwargs: Any) -> Any:
        timeout = self._lookup(host, port)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(host, port, **kwargs)
        except TimeoutError:
            # An OSError is what mitmproxy reports as a failed connection.
            raise OSError(f"{CONNECT_TIMEOUT_MARK} after {timeout:g}s") from None


def install(lookup: TimeoutLookup) -> None:
    """Bound every upstream connect by ``lookup(host, port)`` seconds."""
    mitm_server.asyncio = _AsyncioWithConnectTimeout(lookup)  # type: ignore[attr-defined]
