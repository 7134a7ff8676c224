"""Load generator for bench/bench.py: N concurrent senders, for a fixed time, in its own process.

An asyncio client on raw sockets (TCP_NODELAY set, like a well-configured webhook sender) that
POSTs a small JSON webhook and reads the whole response. Modes:

  direct        origin-form requests straight to the receiver (plain or TLS)
  proxy         absolute-form requests to a forward proxy (plain HTTP through the proxy)
  connect       CONNECT host:port through the proxy, then TLS (to the proxy's interception
                certificate, or end to end through a tunnel), then origin-form requests

``keepalive`` keeps one connection per sender for the whole run; without it every request
opens a new connection (and, for ``connect``, a new CONNECT and TLS handshake), which is then
part of that request's latency. Only loopback addresses are accepted.

Protocol with the orchestrator: the spec is one JSON argument; the process prints
``measure-start`` and ``measure-end`` lines when the measured window opens and closes (so the
orchestrator can sample the proxy's CPU and memory at the same moments), then one JSON line
with the results, including this process's own CPU time in the window.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any

BODY = json.dumps(
    {
        "type": "invoice.paid",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {
            "id": "in_1QxYz2AbCdEf",
            "customer": "cus_9s8d7f6g5h",
            "amount_paid": 4200,
            "currency": "eur",
            "lines": [{"description": "Pro plan", "amount": 4200, "quantity": 1}],
        },
    }
).encode()


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Spec:
    mode: str  # direct | proxy | connect
    host: str  # the receiver's name (Host header, SNI)
    port: int  # the receiver's port
    path: str
    connect_to: tuple[str, int]  # where the TCP connection goes (receiver or proxy)
    tls: bool = False
    cafile: str | None = None  # the CA the client trusts for TLS
    concurrency: int = 1
    keepalive: bool = True
    warmup: float = 0.5
    duration: float = 2.0
    max_requests: int = 200_000  # a hard cap, whatever the duration

    @classmethod
    def from_json(cls, text: str) -> Spec:
        raw = json.loads(text)
        raw["connect_to"] = tuple(raw["connect_to"])
        return cls(**raw)


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    measured: int = 0
    started: int = 0  # requests started inside the window (for max_requests)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class BadResponse(Exception):
    pass


async def read_response(reader: asyncio.StreamReader, connect: bool = False) -> tuple[int, bool]:
    """Read one whole response; return (status, whether the server keeps the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise BadResponse(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    keep = parts[0] == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection":
            keep = "close" not in value.lower() and (keep or "keep-alive" in value.lower())
    if connect and 200 <= status < 300:
        return status, True  # a tunnel: no body (RFC 9110 9.3.6)
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    elif status not in (204, 304) and not 100 <= status < 200:
        await reader.read()  # delimited by close
        keep = False
    return status, keep


class Client:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.ssl: ssl.SSLContext | None = None
        if spec.tls:
            self.ssl = ssl.create_default_context(cafile=spec.cafile)
        authority = f"{spec.host}:{spec.port}"
        scheme = "https" if spec.tls else "http"
        target = f"{scheme}://{authority}{spec.path}" if spec.mode == "proxy" else spec.path
        close = "" if spec.keepalive else "Connection: close\r\n"
        self.request = (
            f"POST {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: hookwall-bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n{close}\r\n"
        ).encode() + BODY
        self.connect_request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        spec = self.spec
        host, port = spec.connect_to
        if spec.mode == "direct" and self.ssl is not None:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self.ssl, server_hostname=spec.host
            )
        else:
            reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if spec.mode == "connect":
            writer.write(self.connect_request)
            status, _ = await read_response(reader, connect=True)
            if status != 200:
                writer.close()
                raise BadResponse(f"CONNECT answered {status}")
            await writer.start_tls(self.ssl, server_hostname=spec.host)  # type: ignore[arg-type]
        return reader, writer

    async def exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, bool]:
        writer.write(self.request)
        return await read_response(reader)


async def sender(client: Client, results: Results, window: tuple[float, float]) -> None:
    spec = client.spec
    start, end = window
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while True:
        now = time.perf_counter()
        if now >= end or results.started >= spec.max_requests:
            break
        if now >= start:
            results.started += 1
        try:
            if conn is None and spec.keepalive:
                conn = await client.open()
            t0 = time.perf_counter()
            if not spec.keepalive:
                conn = await client.open()
            assert conn is not None
            status, keep = await client.exchange(*conn)
            t1 = time.perf_counter()
        except Exception as exc:  # counted, and the sender reconnects
            if start <= time.perf_counter() < end:
                results.error(type(exc).__name__)
            if conn is not None:
                conn[1].close()
                conn = None
            await asyncio.sleep(0.01)
            continue
        if start <= t0 and t1 <= end:
            results.measured += 1
            if status == 200:
                results.latencies_ms.append((t1 - t0) * 1000)
            else:
                results.error(f"status {status}")
        if not keep or not spec.keepalive:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def run(spec: Spec) -> dict[str, Any]:
    if not loopback(spec.connect_to[0]):
        raise SystemExit(f"refusing a non-loopback target {spec.connect_to[0]}")
    client = Client(spec)
    results = Results()
    begin = time.perf_counter()
    window = (begin + spec.warmup, begin + spec.warmup + spec.duration)
    tasks = [asyncio.create_task(sender(client, results, window)) for _ in range(spec.concurrency)]

    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    print("measure-start", flush=True)
    cpu0, t0 = os.times(), time.perf_counter()
    # The window closes at its end, or earlier when every sender is done (max_requests).
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, window[1] - time.perf_counter()))
    cpu1, t1 = os.times(), time.perf_counter()
    print("measure-end", flush=True)
    # Senders finish their request in flight (bounded: no request may take forever).
    if pending:
        _, pending = await asyncio.wait(pending, timeout=30)
    for task in pending:
        task.cancel()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "latencies_ms": [round(x, 4) for x in results.latencies_ms],
        "errors": results.errors,
        "measured": results.measured,
        "duration": round(t1 - t0, 6),
        "cpu_s": round(cpu, 4),
    }


def main() -> None:
    spec = Spec.from_json(sys.argv[1])
    out = asyncio.run(run(spec))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
