"""A tiny authoritative DNS server on loopback, written with dnspython, for tests.

Serves test names the way hostile or careless DNS does: an lvh.me-style name answering
127.0.0.1, names with mixed public/internal answers, rebinding names whose answer changes
from one query round to the next, NXDOMAIN, SERVFAIL and silence (timeouts).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections import Counter
from collections.abc import Sequence

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class TestDnsServer:
    __test__ = False  # not a pytest test class

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.2)
        self.address: tuple[str, int] = self._sock.getsockname()
        self._rounds: dict[str, list[tuple[list[str], int]]] = {}
        self._servfail: set[str] = set()
        self._silent: set[str] = set()
        self.queries: Counter[str] = Counter()  # name -> number of A queries
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="test-dns")

    @property
    def spec(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def add(self, name: str, *addresses: str, ttl: int = 300) -> None:
        """A name with a fixed answer (A and AAAA records picked from ``addresses``)."""
        self.add_rounds(name, list(addresses), ttl=ttl)

    def add_rounds(self, name: str, *rounds: Sequence[str], ttl: int = 0) -> None:
        """A name whose answer changes per query round (the last round repeats): rebinding."""
        with self._lock:
            self._rounds[name.lower().rstrip(".")] = [(list(r), ttl) for r in rounds]

    def servfail(self, name: str) -> None:
        self._servfail.add(name.lower().rstrip("."))

    def silent(self, name: str) -> None:
        self._silent.add(name.lower().rstrip("."))

    def start(self) -> TestDnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:  # ends the wait in
            waker.sendto(b"", self.address)  # recvfrom now, not at its next timeout
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self._answer(dns.message.from_wire(data))
            except Exception:
                continue
            if reply is not None:
                self._sock.sendto(reply.to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if name in self._silent:
            return None
        if name in self._servfail:
            reply.set_rcode(dns.rcode.SERVFAIL)
            return reply
        with self._lock:
            rounds = self._rounds.get(name)
            if rounds is None:
                reply.set_rcode(dns.rcode.NXDOMAIN)
                return reply
            if question.rdtype == dns.rdatatype.A:
                self.queries[name] += 1
            index = min(max(self.queries[name], 1), len(rounds)) - 1
            addresses, ttl = rounds[index]
        version = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}.get(question.rdtype)
        matching = [a for a in addresses if ipaddress.ip_address(a).version == version]
        if matching:
            rdtype = dns.rdatatype.to_text(question.rdtype)
            reply.answer.append(
                dns.rrset.from_text_list(question.name, ttl, "IN", rdtype, matching)
            )
        return reply
