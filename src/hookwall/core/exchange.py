"""A neutral view of one HTTP request, as the concerns' logic reads it.

Who sent what to where: method, URL, the header list as sent, the body (once it has arrived),
the sender's address and, once authenticated, the sender. No mitmproxy type: each addon builds
one from its flow (``flow/exchange.py``), so another data path (plain HTTP without mitmproxy)
can hand the same logic the same thing. Header names compare case-insensitively, and several
fields of one name read as one value joined by ", " (RFC 9110 5.3), as mitmproxy reads them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Exchange:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]  # (name, value) as sent, in order, repeats kept
    body: bytes | None = None  # None until the body has arrived whole
    client: str | None = None  # the sender's IP address
    sender: str | None = None  # the authenticated sender, once known

    def header_values(self, name: str) -> list[str]:
        """Every value of the fields named ``name``, in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: str) -> str | None:
        """The field's value (repeats joined by ", "), or None without one."""
        values = self.header_values(name)
        return ", ".join(values) if values else None

    def has_header(self, name: str) -> bool:
        wanted = name.lower()
        return any(key.lower() == wanted for key, _ in self.headers)

    def header_names(self) -> set[str]:
        """The lower-case names of the fields present."""
        return {key.lower() for key, _ in self.headers}
