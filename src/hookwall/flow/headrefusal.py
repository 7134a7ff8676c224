"""A sender's request head refused before mitmproxy made a flow of it (``mitm/http1guard.py``):
the record its one exchange event is made from (ExchangeLog). It has no flow, so no
``FlowState``; this is what stands in for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookwall.core.denials import Denial


@dataclass(frozen=True, slots=True)
class HeadRefusal:
    client_id: str
    peername: Any  # the sender's socket address, as mitmproxy has it (None if unknown)
    request_id: str
    denial: Denial
    start_line: bytes  # as received (possibly incomplete or hostile)
