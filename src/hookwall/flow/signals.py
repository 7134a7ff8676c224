"""What mitmproxy's patched internals (``mitm/``) tell hookwall's addons outside any hook.

A new request head begins (ConnectionGuard starts its head deadline), a sender's head is
refused before mitmproxy made a flow of it (ExchangeLog logs its one event), a connection's
layer crashed (Lifecycle fails the exchanges open on it and says what to answer). The
pipeline puts its listeners in these lists; the patches call them. Nothing here knows either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hookwall.core.denials import Denial


@dataclass(frozen=True, slots=True)
class HeadRefusal:
    """A sender's head refused before mitmproxy made a flow of it: what its event says."""

    client_id: str
    peername: Any  # the sender's socket address, as mitmproxy has it (None if unknown)
    request_id: str
    denial: Denial
    start_line: bytes  # as received (possibly incomplete or hostile)


# Called with the client connection's id when the first byte of a new request head arrives.
head_started: list[Callable[[str], None]] = []
# Called once for every sender's head refused before it became a flow.
head_refused: list[Callable[[HeadRefusal], None]] = []
# Called with (client connection id, the exception) when a layer of that connection raised;
# returns the answer to write to the sender before the connection closes (None: just close).
crashed: list[Callable[[str, BaseException], bytes | None]] = []
