"""Typed doors to mitmproxy's test helpers, for the unit tests under ``mypy --strict``.

mitmproxy's ``taddons.context``, ``AddonManager.add``/``remove`` and ``Options.update`` have no
annotations, and ``mitmproxy.proxy.layers.http`` exports its hooks only implicitly; each of
those calls is made here once, narrowly ignored, so the tests call typed functions.

``AddonContext.hook`` hands an event to the addons under test the way mitmproxy's addon
manager does (by the event's hook name, awaiting an async handler), but lets a handler's
exception through: the manager's ``trigger_event`` would only log it, and a broken addon
would pass its tests.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from mitmproxy import connection, hooks, tls
from mitmproxy.addonmanager import AddonManager
from mitmproxy.addons import proxyserver
from mitmproxy.master import Master
from mitmproxy.options import Options
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http._hooks import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.proxy.layers.tls import parse_client_hello
from mitmproxy.test import taddons

__all__ = [
    "AddonContext",
    "HttpConnectErrorHook",
    "HttpConnectHook",
    "HttpConnectedHook",
    "HttpErrorHook",
    "HttpRequestHeadersHook",
    "HttpRequestHook",
    "HttpResponseHeadersHook",
    "HttpResponseHook",
    "Step",
    "add_addons",
    "addon_context",
    "background_done",
    "client_hello",
    "remove_addon",
    "run_hooks",
    "tls_data",
    "update_options",
]


class AddonContext:
    """A ``taddons.context``: mitmproxy's ``ctx`` is set up as in a running proxy, and the
    addons under test are registered with its addon manager, after mitmproxy's
    ``Proxyserver`` unless they include one (idle: no listener, no connection), which
    hookwall's addons ask for the connections they close (``hookwall.flow.conns``)."""

    def __init__(self, context: Any, addons: Sequence[object]) -> None:
        self._context = context  # a taddons.context (unannotated)
        self.addons = list(addons)
        self.master: Master = context.master
        self.options: Options = context.options

    async def hook(self, *events: hooks.Hook) -> None:
        """Each event, in order, to each addon under test that handles it (in their order)."""
        for event in events:
            handlers = [addon for addon in self.addons if hasattr(addon, event.name)]
            assert handlers, f"no addon under test handles {event.name}"
            for addon in handlers:
                await self.master.addons.invoke_addon(addon, event)

    def configure(self, addon: object, **values: object) -> None:
        """Set options (rolled back if an addon refuses them) and run ``configure``."""
        self._context.configure(addon, **values)


@contextmanager
def addon_context(*addons: object, loadcore: bool = True) -> Iterator[AddonContext]:
    """``taddons.context(*addons)``, typed. Enter it inside the event loop the addons will
    run on (``asyncio.run``): mitmproxy's master binds to the running loop."""
    servers = [] if any(isinstance(a, proxyserver.Proxyserver) for a in addons) else [_server()]
    with taddons.context(*servers, *addons, loadcore=loadcore) as context:  # type: ignore[no-untyped-call]
        yield AddonContext(context, addons)


def _server() -> proxyserver.Proxyserver:
    return proxyserver.Proxyserver()  # type: ignore[no-untyped-call]  # mitmproxy, unannotated


Step = hooks.Hook | Callable[[], object]


def run_hooks(addons: Sequence[object], *steps: Step) -> None:
    """Drive the addons through the steps in one event loop: a hook goes to every addon
    that handles it; a plain callable between hooks stands for what happened meanwhile."""

    async def go() -> None:
        with addon_context(*addons, loadcore=False) as tctx:
            for step in steps:
                if isinstance(step, hooks.Hook):
                    await tctx.hook(step)
                else:
                    step()

    asyncio.run(go())


async def background_done() -> None:
    """Wait for every other task on the loop (what an addon spawned) to finish."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.gather(*others)


def add_addons(manager: AddonManager, *addons: object) -> None:
    manager.add(*addons)  # type: ignore[no-untyped-call]  # mitmproxy, unannotated


def remove_addon(manager: AddonManager, addon: object) -> None:
    manager.remove(addon)  # type: ignore[no-untyped-call]  # mitmproxy, unannotated


def update_options(options: Options, **values: object) -> None:
    options.update(**values)  # type: ignore[no-untyped-call]  # mitmproxy, unannotated


def client_hello(client: connection.Client, sni: str) -> tls.ClientHelloData:
    """The ``tls_clienthello`` data of a real ClientHello for ``sni``, on ``client``'s
    connection (made by Python's ssl module, parsed by mitmproxy)."""
    out = ssl.MemoryBIO()
    sock = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), out, server_hostname=sni)
    with suppress(ssl.SSLWantReadError):
        sock.do_handshake()
    hello = parse_client_hello(out.read())
    assert hello is not None
    return tls.ClientHelloData(Context(client, Options()), hello)


def tls_data(client: connection.Client, server: tuple[str, int]) -> tls.TlsData:
    """The ``tls_start_server`` data for ``client``'s connection to ``server``."""
    context = Context(client, Options())
    context.server.address = server
    return tls.TlsData(context.server, context)
