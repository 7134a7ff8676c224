"""A fast asyncio HTTP/1.1 receiver for bench/bench.py, used when nginx is not installed.

Keep-alive, plain and TLS listeners, one process (run it as its own process so its CPU is
not the orchestrator's). ``POST /<N>k`` answers 200 with N KiB; any other path 200 with 1 KiB.
Request bodies are read (Content-Length or chunked) and discarded.

    python -m bench.receiver --host 127.0.0.2 --port 0 --tls-port 0 --cert C --key K
Prints one JSON line ``{"port": P, "tls_port": Q}`` once both listeners are up.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import re
import signal
import ssl

_SIZE = re.compile(rb"^/(\d+)k\b")
_cache: dict[bytes, bytes] = {}


def response_for(path: bytes) -> bytes:
    found = _cache.get(path)
    if found is None:
        match = _SIZE.match(path)
        kib = min(int(match.group(1)), 4096) if match else 1
        body = b"x" * (kib * 1024)
        head = (
            "HTTP/1.1 200 OK\r\nServer: bench-receiver\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        found = _cache[path] = head + body
    return found


class HttpProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end])
            lines = head.split(b"\r\n")
            try:
                _method, path, version = lines[0].split(b" ", 2)
            except ValueError:
                self.transport.close()
                return
            length = 0
            close = version == b"HTTP/1.0"
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    value = value.strip().lower()
                    close = b"close" in value or (close and b"keep-alive" not in value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            pos = end + 4
            if chunked:  # rare here: find the terminating chunk, body is discarded
                last = self.buffer.find(b"\r\n0\r\n\r\n", pos - 2)
                if last < 0:
                    return
                pos = last + 7
            elif len(self.buffer) < pos + length:
                return
            else:
                pos += length
            del self.buffer[:pos]
            self.transport.write(response_for(path))
            if close:
                self.transport.close()
                return


async def serve(args: argparse.Namespace) -> None:
    if not ipaddress.ip_address(args.host).is_loopback:
        raise SystemExit("the bench receiver binds loopback only")
    loop = asyncio.get_running_loop()
    plain = await loop.create_server(HttpProtocol, args.host, args.port, backlog=1024)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    tls = await loop.create_server(
        HttpProtocol, args.host, args.tls_port, ssl=context, backlog=1024
    )
    port = plain.sockets[0].getsockname()[1]
    tls_port = tls.sockets[0].getsockname()[1]
    print(json.dumps({"port": port, "tls_port": tls_port}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    plain.close()
    tls.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.2")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
