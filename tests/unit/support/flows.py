"""What the addon tests share: a real policy from YAML text, a runtime around it, test flows
aimed at a destination, and the observable parts of hookwall's answer on a flow.

The assertions read what a sender or the next addon sees (the response, its headers, the
exchange's ``FlowState``), never hookwall's private ``flow.metadata`` keys.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from mitmproxy import connection, http
from mitmproxy.test import tflow

from hookwall.core.denials import REASON_HEADER
from hookwall.destinations.resolver import Resolver
from hookwall.flow.runtime import Runtime
from hookwall.flow.state import FlowState, state_of
from hookwall.policy import Policy, load_policy

REQUEST_ID_HEADER = "X-Hookwall-Request-Id"
# Nothing answers DNS here: a runtime aimed at it judges literals only (and never leaves lo).
NO_DNS = ("127.0.0.1", 9)


def load(tmp_path: Path, text: str, name: str = "policy.yaml") -> Policy:
    path = tmp_path / name
    path.write_text(text)
    return load_policy(path)


def runtime_for(policy: Policy, dns: tuple[str, int] = NO_DNS) -> Runtime:
    """A runtime as the proxy builds it, its resolver aimed at ``dns`` only."""
    return Runtime(policy, Resolver([dns], timeout=1.0))


def request_to(
    host: str,
    port: int = 80,
    *,
    method: str = "POST",
    path: str = "/hook",
    scheme: str = "http",
    body: bytes = b"{}",
    client: connection.Client | None = None,
) -> http.HTTPFlow:
    """A sender's request for ``scheme://host:port/path`` (absolute form, as to a proxy),
    with the Host header its client sends."""
    flow = tflow.tflow(client_conn=client)
    request = flow.request
    request.method, request.scheme, request.host, request.port = method, scheme, host, port
    request.path = path
    default = 443 if scheme == "https" else 80
    request.headers.clear()
    request.headers["Host"] = host if port == default else f"{host}:{port}"
    request.headers["Content-Type"] = "application/json"
    request.content = body  # and its Content-Length
    return flow


def connect_to(
    host: str, port: int = 443, client: connection.Client | None = None
) -> http.HTTPFlow:
    """A sender's ``CONNECT host:port``."""
    flow = tflow.tflow(client_conn=client)
    request = flow.request
    request.method, request.host, request.port, request.path = "CONNECT", host, port, ""
    request.headers.clear()
    request.content = b""
    return flow


def inside(tunnel: http.HTTPFlow, host: str, path: str = "/hook") -> http.HTTPFlow:
    """A request inside the tunnel the CONNECT ``tunnel`` opened: on its client connection,
    origin form, its Host naming ``host`` as a sender's HTTPS client sends it."""
    return request_to(host, 443, scheme="https", path=path, client=tunnel.client_conn)


def responded(flow: http.HTTPFlow, status: int = 200, body: bytes = b"ok") -> http.HTTPFlow:
    """The flow once the receiver answered ``status``."""
    flow.response = http.Response.make(status, body, {"Content-Type": "text/plain"})
    return flow


def basic(name: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def state(flow: http.HTTPFlow) -> FlowState:
    """The exchange's state, which the flow must have by now."""
    found = state_of(flow)
    assert found is not None, "no exchange state on the flow"
    return found


def reason(flow: http.HTTPFlow) -> str | None:
    """hookwall's reason code on the flow's response (None: not a hookwall refusal)."""
    return flow.response.headers.get(REASON_HEADER) if flow.response else None


def assert_refused(flow: http.HTTPFlow, status: int, why: str) -> FlowState:
    """hookwall answered the flow itself, per the denial contract: the status, the reason
    header, the exchange's request id, and a JSON body saying the same as its denial."""
    found = state(flow)
    response = flow.response
    assert response is not None, f"not answered (denial: {found.denial})"
    assert (response.status_code, reason(flow)) == (status, why), response.get_text()
    assert response.headers[REQUEST_ID_HEADER] == found.request_id
    body = json.loads(response.get_text() or "")
    assert found.denial is not None and found.denial.reason == why
    assert body == {"error": why, "message": found.denial.message, "request_id": found.request_id}
    return found


def assert_passed(flow: http.HTTPFlow) -> FlowState:
    """Nothing refused the flow: no denial and no answer of hookwall's."""
    found = state(flow)
    assert found.denial is None, found.denial
    assert reason(flow) is None
    return found
