"""Correlation: link an exchange to the one it replays, and tell the sender its request id.

- ``X-Hookwall-Replay-Of: <request id>`` (sent by ``hookwall replay``) becomes the event's
  ``replay_of``; it is read here, before HopHeaders strips every ``X-Hookwall-*`` header, so
  the receiver never sees it.
- Every response the proxy relays carries ``X-Hookwall-Request-Id`` (refusals already do), so
  a sender can log it and an operator can run ``hookwall logs show <id>``. It is always set,
  never kept from the response: the id is the one in this delivery's exchange event.
"""

from __future__ import annotations

import re

from mitmproxy import http

from hookwall.core.headers import REPLAY_OF, REQUEST_ID
from hookwall.flow.state import state_of

# What may be logged from a sender-supplied header: request-id-like text only.
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Correlation:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        value = flow.request.headers.pop(REPLAY_OF, None)
        state = state_of(flow)
        if state is not None and value and _ID.fullmatch(value.strip()):
            state.replay_of = value.strip()

    def response(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is not None and flow.response is not None:
            flow.response.headers[REQUEST_ID] = state.request_id
