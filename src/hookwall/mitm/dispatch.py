"""A hook dispatcher that looks each event's handlers up once, not once per flow.

mitmproxy's ``AddonManager`` finds the handlers for every event of every flow by walking the
whole addon tree: a generator per addon, ``getattr`` per addon, a ``contextmanager`` per
addon, the hook's arguments rebuilt from ``dataclasses.fields`` per addon, and then the same
walk again for the ``update`` event that follows every flow event. Measured with py-spy
(``bench/PROFILE.md``) that is about half of bare mitmdump's CPU per request. hookwall's chain is
fixed once the proxy starts, so :class:`CachedAddonManager` resolves an event name to its
handlers on first use and keeps that table until an addon is added or removed.

Behaviour is mitmproxy's, case by case: handlers run in chain order (an addon before its
sub-addons); a handler may be sync or async; ``AddonHalt`` stops the event; ``OptionsError``
propagates; any other exception is logged as an addon error and skips the rest of that
top-level addon's handlers, and the next addon still runs.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable
from typing import Any

from mitmproxy import exceptions, flow, hooks
from mitmproxy.addonmanager import AddonManager, traverse

logger = logging.getLogger("mitmproxy.addonmanager")

# For one event: (top-level addon index, handler) in chain order.
Handlers = tuple[tuple[int, Callable[..., Any]], ...]


class CachedAddonManager(AddonManager):
    def __init__(self, master: Any) -> None:
        super().__init__(master)
        self._handlers: dict[str, Handlers] = {}

    # -- the table --------------------------------------------------------------------------
    def handlers(self, name: str) -> Handlers:
        """Every handler for the event ``name``, found on first use."""
        found = self._handlers.get(name)
        if found is None:
            found = self._handlers[name] = tuple(self._collect(name))
        return found

    def _collect(self, name: str) -> list[tuple[int, Callable[..., Any]]]:
        out = []
        for index, top in enumerate(self.chain):
            for addon in traverse([top]):
                func = getattr(addon, name, None)
                if func is None or isinstance(func, types.ModuleType):
                    continue  # mitmproxy skips a module imported under a hook's name, too
                if not callable(func):
                    raise exceptions.AddonManagerError(
                        f"Addon handler {name} ({addon}) not callable"
                    )
                out.append((index, func))
        return out

    def register(self, addon: Any) -> Any:
        self._handlers.clear()
        return super().register(addon)

    def add(self, *addons: Any) -> None:
        super().add(*addons)
        self._handlers.clear()  # the chain itself changed after register()

    def remove(self, addon: Any) -> None:
        super().remove(addon)
        self._handlers.clear()

    def clear(self) -> None:
        super().clear()
        self._handlers.clear()

    # -- dispatch ---------------------------------------------------------------------------
    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        args = event.args()
        await self._run(event.name, args)
        message = args[0] if args else None
        if isinstance(message, flow.Flow) and self.handlers("update"):
            await self._run("update", [[message]])

    async def trigger_event(self, event: hooks.Hook) -> None:
        await self._run(event.name, event.args())

    async def _run(self, name: str, args: list[Any]) -> None:
        skip = -1  # the top-level addon whose handler failed: mitmproxy skips its children
        for index, func in self.handlers(name):
            if index == skip:
                continue
            try:
                result = func(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as exc:
                logger.error(f"Addon error: {exc}", exc_info=True)
                skip = index
