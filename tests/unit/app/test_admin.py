"""The admin app (routing, readiness, bearer token) and its small h11 server, without a proxy."""

from __future__ import annotations

import asyncio

import pytest

from hookwall.app import admin
from hookwall.app.admin import AdminApp, AdminServer, Health


def render(accept: str | None) -> tuple[bytes, str]:
    return b"hookwall_up 1\n", f"text/plain; accept={accept}"


def app(token: str | None = None, listening: bool = True) -> AdminApp:
    return AdminApp(Health(listening=lambda: listening), render, token)


def test_routes() -> None:
    a = app()
    assert a.handle("GET", "/healthz", {}).status == 200
    assert a.handle("HEAD", "/healthz", {}).status == 200
    assert a.handle("GET", "/readyz?verbose=1", {}).status == 200
    assert a.handle("GET", "/", {}).status == 404
    refused = a.handle("DELETE", "/metrics", {})
    assert refused.status == 405 and ("Allow", "GET, HEAD") in refused.headers
    metrics = a.handle("GET", "/metrics", {"accept": "text/plain"})
    assert (metrics.status, metrics.body) == (200, b"hookwall_up 1\n")
    assert metrics.content_type == "text/plain; accept=text/plain"


def test_readiness_follows_start_and_drain() -> None:
    health = Health(listening=lambda: False)
    a = AdminApp(health, render)
    assert (a.handle("GET", "/readyz", {}).status, health.readiness()) == (503, (False, "starting"))
    health.listening = lambda: True
    assert a.handle("GET", "/readyz", {}).status == 200
    health.draining = True
    response = a.handle("GET", "/readyz", {})
    assert (response.status, response.body) == (503, b"draining\n")
    assert a.handle("GET", "/healthz", {}).status == 200  # alive while draining


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer s3cret-token", 200),
        ("bearer s3cret-token", 200),
        ("Bearer s3cret-tokenX", 401),
        ("Bearer ", 401),
        ("Basic s3cret-token", 401),
        ("s3cret-token", 401),
    ],
)
def test_metrics_token(header: str | None, status: int) -> None:
    headers = {"authorization": header} if header is not None else {}
    response = app("s3cret-token").handle("GET", "/metrics", headers)
    assert response.status == status
    if status == 401:
        assert ("WWW-Authenticate", 'Bearer realm="hookwall-admin"') in response.headers
        assert b"s3cret" not in response.body
    # Probes never need the token.
    assert app("s3cret-token").handle("GET", "/healthz", {}).status == 200


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return out


def test_server_keep_alive_head_and_bad_requests() -> None:
    async def run() -> None:
        server = AdminServer(app(), "127.0.0.1", 0)
        address = await server.start()
        assert address == f"127.0.0.1:{server.port}" and server.port != 0
        try:
            two = (
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            out = await _exchange(server.port, two)
            assert out.count(b"HTTP/1.1 200 OK") == 2
            assert b"Content-Length: 14\r\n" in out and out.endswith(b"\r\n\r\n")
            assert b"hookwall_up" not in out  # HEAD: no body
            bad = await _exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n")
            assert bad.startswith(b"HTTP/1.1 400 ")
        finally:
            await server.close()

    asyncio.run(run())


def test_server_drops_a_client_that_never_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "READ_TIMEOUT", 0.2)
    monkeypatch.setattr(admin, "IDLE_TIMEOUT", 0.2)

    async def run() -> None:
        server = AdminServer(app(), "127.0.0.1", 0)
        await server.start()
        try:
            out = await _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            assert out == b""  # closed without an answer once the read timeout passed
        finally:
            await server.close()

    asyncio.run(run())


def test_a_failing_render_is_a_500_not_a_dead_listener() -> None:
    def broken(accept: str | None) -> tuple[bytes, str]:
        raise RuntimeError("boom")

    async def run() -> None:
        server = AdminServer(AdminApp(Health(lambda: True), broken), "127.0.0.1", 0)
        await server.start()
        try:
            out = await _exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 500 ") and b"RuntimeError" in out
            ok = await _exchange(
                server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert ok.startswith(b"HTTP/1.1 200 ")
        finally:
            await server.close()

    asyncio.run(run())
