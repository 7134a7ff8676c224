"""One real redis-server for the limiter tests of this package (skipped where it is missing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redisserver import RedisServer


@pytest.fixture(scope="package")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The server's URL, emptied for this test."""
    redis_server.flush()
    return redis_server.url
