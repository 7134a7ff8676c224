"""CachedAddonManager dispatches exactly like mitmproxy's AddonManager, only cheaper.

Each scenario runs against both managers and the call logs must match; then the cache itself
(built once, rebuilt after the chain changes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import pytest
from mitmproxy import exceptions, hooks, http, options
from mitmproxy.addonmanager import AddonManager
from mitmproxy.flow import Flow
from mitmproxy.master import Master
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow

from hookwall.mitm.dispatch import CachedAddonManager
from tests.unit.support.mitm import (
    HttpRequestHook,
    HttpResponseHook,
    add_addons,
    remove_addon,
)

Calls = list[str]


class Recorder:
    """An addon that records its hook calls; ``fail``/``halt`` make a hook misbehave."""

    def __init__(
        self,
        name: str,
        calls: Calls,
        *,
        fail: str = "",
        halt: str = "",
        children: Sequence[Recorder] = (),
    ) -> None:
        self.name = name
        self.calls = calls
        self.fail = fail
        self.halt = halt
        if children:
            self.addons = list(children)

    def _note(self, hook: str) -> None:
        self.calls.append(f"{self.name}.{hook}")
        if hook == self.fail:
            raise ValueError(f"{self.name} broke in {hook}")
        if hook == self.halt:
            raise exceptions.AddonHalt

    def request(self, flow: http.HTTPFlow) -> None:
        self._note("request")

    async def response(self, flow: http.HTTPFlow) -> None:
        await asyncio.sleep(0)
        self._note("response")

    def server_connect(self, data: ServerConnectionHookData) -> None:
        self._note("server_connect")


class Updates:
    name = "updates"

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def update(self, flows: Sequence[Flow]) -> None:
        self.calls.append(f"update({len(flows)})")


def _master(manager: type[AddonManager]) -> Master:
    master = Master(options.Options())
    if manager is CachedAddonManager:
        master.options.changed.disconnect(master.addons._configure_all)
        master.addons = CachedAddonManager(master)
    return master


def _both(build: Callable[[Calls], list[object]], hook: Callable[[], hooks.Hook]) -> list[Calls]:
    """The calls one hook produces with each manager (same addons, fresh each time; one
    loop, since mitmproxy's log handler stays bound to the loop its master started on)."""

    async def run() -> list[Calls]:
        logs = []
        for manager in (AddonManager, CachedAddonManager):
            calls: Calls = []
            master = _master(manager)
            add_addons(master.addons, *build(calls))
            await master.addons.handle_lifecycle(hook())
            logs.append(calls)
        return logs

    return asyncio.run(run())


def _request() -> hooks.Hook:
    return HttpRequestHook(tflow.tflow())


def _response() -> hooks.Hook:
    return HttpResponseHook(tflow.tflow(resp=True))


def _server_connect() -> hooks.Hook:
    from mitmproxy.proxy.server_hooks import ServerConnectHook

    flow = tflow.tflow()
    return ServerConnectHook(ServerConnectionHookData(flow.server_conn, flow.client_conn))


SCENARIOS: dict[str, tuple[Callable[[Calls], list[object]], Callable[[], hooks.Hook]]] = {
    "order with sub-addons": (
        lambda c: [
            Recorder("a", c, children=[Recorder("a1", c), Recorder("a2", c)]),
            Recorder("b", c),
        ],
        _request,
    ),
    "async handlers": (lambda c: [Recorder("a", c), Recorder("b", c)], _response),
    "halt stops the event": (
        lambda c: [Recorder("a", c), Recorder("b", c, halt="request"), Recorder("c", c)],
        _request,
    ),
    "a failure skips that addon's children, not the next addon": (
        lambda c: [
            Recorder("a", c, fail="request", children=[Recorder("a1", c)]),
            Recorder("b", c),
        ],
        _request,
    ),
    "a failing child does not stop its siblings' addon chain": (
        lambda c: [
            Recorder("a", c, children=[Recorder("a1", c, fail="request"), Recorder("a2", c)]),
            Recorder("b", c),
        ],
        _request,
    ),
    "update follows flow events": (lambda c: [Recorder("a", c), Updates(c)], _request),
    "no update after non-flow events": (
        lambda c: [Recorder("a", c), Updates(c)],
        _server_connect,
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_same_calls_as_mitmproxy(name: str, caplog: pytest.LogCaptureFixture) -> None:
    build, hook = SCENARIOS[name]
    with caplog.at_level(logging.ERROR):
        mitmproxy_calls, cached_calls = _both(build, hook)
    assert cached_calls == mitmproxy_calls
    assert cached_calls  # the scenario did call something


def test_failure_is_logged_as_an_addon_error(caplog: pytest.LogCaptureFixture) -> None:
    build, hook = SCENARIOS["a failure skips that addon's children, not the next addon"]
    with caplog.at_level(logging.ERROR):
        _both(build, hook)
    errors = [r for r in caplog.records if "Addon error: a broke in request" in r.getMessage()]
    assert len(errors) == 2  # once per manager
    assert all(r.exc_info for r in errors)


def test_options_error_propagates() -> None:
    class Strict:
        def request(self, flow: http.HTTPFlow) -> None:
            raise exceptions.OptionsError

    async def run() -> None:
        master = _master(CachedAddonManager)
        add_addons(master.addons, Strict())
        await master.addons.handle_lifecycle(_request())

    with pytest.raises(exceptions.OptionsError):
        asyncio.run(run())


def test_handlers_are_looked_up_once_and_again_after_the_chain_changes() -> None:
    async def run() -> None:
        calls: Calls = []
        master = _master(CachedAddonManager)
        manager = master.addons
        assert isinstance(manager, CachedAddonManager)
        first = Recorder("a", calls)
        add_addons(master.addons, first)
        table = manager.handlers("request")
        assert manager.handlers("request") is table  # cached
        second = Recorder("b", calls)
        add_addons(master.addons, second)
        await master.addons.handle_lifecycle(_request())
        assert calls == ["a.request", "b.request"]
        remove_addon(master.addons, first)
        calls.clear()
        await master.addons.handle_lifecycle(_request())
        assert calls == ["b.request"]

    asyncio.run(run())


def test_a_non_callable_handler_is_refused() -> None:
    class Broken:
        request = 42

    async def run() -> None:
        master = _master(CachedAddonManager)
        add_addons(master.addons, Broken())
        await master.addons.handle_lifecycle(_request())

    with pytest.raises(exceptions.AddonManagerError, match="not callable"):
        asyncio.run(run())
