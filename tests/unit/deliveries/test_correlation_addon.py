"""Correlation in process: the exchange a replay replays, and the request id every response
carries back to the sender."""

from __future__ import annotations

import pytest
from mitmproxy.proxy.server_hooks import ClientConnectedHook

from hookwall.core.headers import REPLAY_OF as REPLAY_HEADER
from hookwall.core.headers import REQUEST_ID as REQUEST_ID_HEADER
from hookwall.deliveries.addons.correlate import Correlation
from hookwall.forwarding.addons.lifecycle import Lifecycle
from hookwall.policy import load_default_policy
from tests.unit.support.flows import request_to, responded, runtime_for, state
from tests.unit.support.mitm import HttpRequestHeadersHook, HttpResponseHook, run_hooks


def lifecycle() -> Lifecycle:
    return Lifecycle(runtime_for(load_default_policy()), {})


@pytest.mark.parametrize(
    ("value", "recorded"),
    [
        ("req_01a23461b9dd15b435d29f1b", "req_01a23461b9dd15b435d29f1b"),
        ("  req_1  ", "req_1"),
        ("req 1", None),  # not an id: never logged
        ("x" * 65, None),
        ("<script>", None),
    ],
)
def test_a_replay_names_the_exchange_it_replays_and_the_header_stops_here(
    value: str, recorded: str | None
) -> None:
    begins = lifecycle()
    flow = request_to("127.0.0.2", 8080)
    flow.request.headers[REPLAY_HEADER] = value
    run_hooks(
        [begins, Correlation()], ClientConnectedHook(flow.client_conn), HttpRequestHeadersHook(flow)
    )
    assert state(flow).replay_of == recorded
    assert REPLAY_HEADER not in flow.request.headers


def test_every_response_carries_the_exchanges_request_id() -> None:
    begins = lifecycle()
    flow = request_to("127.0.0.2", 8080)

    def the_receiver_answers() -> None:
        response = responded(flow).response
        assert response is not None
        response.headers[REQUEST_ID_HEADER] = "the-receivers-own"

    run_hooks(
        [begins, Correlation()],
        ClientConnectedHook(flow.client_conn),
        HttpRequestHeadersHook(flow),
        the_receiver_answers,
        HttpResponseHook(flow),
    )
    assert flow.response is not None
    assert flow.response.headers.get_all(REQUEST_ID_HEADER) == [state(flow).request_id]


def test_a_flow_hookwall_never_began_is_left_as_it_is() -> None:
    flow = request_to("127.0.0.2", 8080)
    flow.request.headers[REPLAY_HEADER] = "req_1"
    responded(flow)
    run_hooks([Correlation()], HttpRequestHeadersHook(flow), HttpResponseHook(flow))
    assert REPLAY_HEADER not in flow.request.headers  # still never forwarded
    assert flow.response is not None and REQUEST_ID_HEADER not in flow.response.headers
