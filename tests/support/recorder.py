"""A raw receiver that records every byte it is sent, and answers each request it can frame.

Framing tests need to know exactly what reached the receiver, not what a lenient HTTP server
made of it: ``received`` is every byte of every connection, in order of arrival. Each request
(a head up to its blank line, then a Content-Length or chunked body) is answered ``200 ok``;
anything it cannot frame is recorded and left unanswered. With ``tls`` it speaks TLS, and
records the decrypted bytes.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Recorder:
    def __init__(self, host: str = "127.0.0.2", tls: ssl.SSLContext | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host, self.port = self.sock.getsockname()[:2]
        self.tls = tls
        self._received = bytearray()
        self.requests = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self.requests = 0

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        conn = raw
        try:
            conn.settimeout(30)
            if self.tls is not None:
                conn = self.tls.wrap_socket(raw, server_side=True)
            with self._lock:
                self._conns.append(conn)
            buffer = b""
            while not self._stop.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    return
                with self._lock:
                    self._received += chunk
                buffer += chunk
                while (size := _request_size(buffer)) is not None:
                    buffer = buffer[size:]
                    with self._lock:
                        self.requests += 1
                    conn.sendall(OK)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


def _request_size(buffer: bytes) -> int | None:
    """The size of the first whole request in ``buffer`` (head and body), None if not whole."""
    end = buffer.find(b"\r\n\r\n")
    if end == -1:
        return None
    head, body_start = buffer[:end].lower(), end + 4
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            last = buffer.find(b"0\r\n\r\n", body_start)
            return None if last == -1 else last + 5
    return body_start + length if len(buffer) >= body_start + length else None
