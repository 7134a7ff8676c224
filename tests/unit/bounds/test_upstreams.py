"""UpstreamPool in process: how many idle receiver connections hookwall keeps, per sender
connection and in all.

What it bounds is real connections, so it runs behind a live in-process mitmproxy
(tests/unit/support/live.py) with keep-alive receivers on 127.0.0.2; each test counts the
connections to each receiver that the proxy keeps open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from hookwall.bounds.addons.upstreams import UpstreamPool
from hookwall.flow.runtime import Runtime
from hookwall.forwarding.addons.lifecycle import Lifecycle
from tests.unit.support.flows import load, runtime_for
from tests.unit.support.live import OK, LiveProxy, Receiver, live_proxy

POLICY = """\
version: 1
unsafe: true
proxy:
  max_idle_upstream_per_client: 2
  max_idle_upstream: 3
defaults:
  network: {allow: [127.0.0.2/32], ports: ["1-65535"]}
"""

Scenario = Callable[[LiveProxy, list[Receiver]], Awaitable[None]]


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return runtime_for(load(tmp_path, POLICY))


def drive(runtime: Runtime, receivers: int, scenario: Scenario) -> tuple[list[int], int]:
    """Run ``scenario`` against a live proxy and ``receivers`` keep-alive receivers; then
    how many connections to each the proxy keeps open, and the pool's count of idle ones."""
    lifecycle = Lifecycle(runtime, {})
    pool = UpstreamPool(runtime, lifecycle, {})

    async def go() -> tuple[list[int], int]:
        async with AsyncExitStack() as stack:
            targets = [await stack.enter_async_context(Receiver()) for _ in range(receivers)]
            proxy = await stack.enter_async_context(live_proxy(lifecycle, pool, lifecycle.end))
            await scenario(proxy, targets)
            await proxy.quiet()
            return [proxy.open_to(target) for target in targets], pool.total

    return asyncio.run(go())


def test_a_sender_connection_keeps_only_its_newest_idle_receiver_connections(
    runtime: Runtime,
) -> None:
    async def one_sender_four_receivers(proxy: LiveProxy, to: list[Receiver]) -> None:
        reader, writer = await proxy.connect()
        for receiver in to:
            assert await proxy.get(writer, reader, receiver) == OK

    open_to, idle = drive(runtime, 4, one_sender_four_receivers)
    assert open_to == [0, 0, 1, 1]  # at most 2 kept, the longest idle closed first
    assert idle == 2


def test_in_all_the_longest_idle_senders_connections_go_first(runtime: Runtime) -> None:
    """Three senders, two receivers each: 6 idle, 3 may stay; the first sender's (idle the
    longest) go, then one of the second's; the last sender keeps both of its own."""

    async def three_senders(proxy: LiveProxy, to: list[Receiver]) -> None:
        senders = [await proxy.connect() for _ in range(3)]  # all three stay connected
        for (reader, writer), pair in zip(senders, (to[0:2], to[2:4], to[4:6]), strict=True):
            for receiver in pair:
                assert await proxy.get(writer, reader, receiver) == OK

    open_to, idle = drive(runtime, 6, three_senders)
    assert open_to == [0, 0, 0, 1, 1, 1]
    assert idle == 3


def test_a_sender_reusing_its_connections_is_not_idle_meanwhile(runtime: Runtime) -> None:
    """Back and forth between two receivers on one connection: both stay open, reused."""

    async def back_and_forth(proxy: LiveProxy, to: list[Receiver]) -> None:
        reader, writer = await proxy.connect()
        for receiver in [*to, *to, *to]:
            assert await proxy.get(writer, reader, receiver) == OK

    open_to, idle = drive(runtime, 2, back_and_forth)
    assert open_to == [1, 1] and idle == 2


def test_connections_the_receiver_closed_are_no_longer_counted(runtime: Runtime) -> None:
    async def receiver_hangs_up(proxy: LiveProxy, to: list[Receiver]) -> None:
        reader, writer = await proxy.connect()
        for receiver in to:
            assert await proxy.get(writer, reader, receiver) == OK
        to[0].hang_up()
        await proxy.until(lambda: not proxy.open_to(to[0]))  # mitmproxy reads the close

    open_to, idle = drive(runtime, 2, receiver_hangs_up)
    assert open_to == [0, 1] and idle == 1


def test_a_sender_that_leaves_takes_its_idle_connections_out_of_the_count(
    runtime: Runtime,
) -> None:
    async def sender_leaves(proxy: LiveProxy, to: list[Receiver]) -> None:
        reader, writer = await proxy.connect()
        assert await proxy.get(writer, reader, to[0]) == OK
        writer.close()
        await proxy.until(lambda: not proxy.client_ids())

    open_to, idle = drive(runtime, 1, sender_leaves)
    assert open_to == [0] and idle == 0
