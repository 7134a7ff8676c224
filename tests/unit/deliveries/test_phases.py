"""What connect_ms, ttfb_ms and duration_ms measure (deliveries/phases.py), one case per mode:
the same rules the README's table states."""

from __future__ import annotations

import pytest

from hookwall.deliveries.phases import Phases, Timestamps, measure

# A request read from 100.0 to 100.5; its event logged at 110.0.
READ = {"request_start": 100.0, "request_end": 100.5, "now": 110.0}


def answered(**fields: object) -> Timestamps:
    values: dict[str, object] = {**READ, "answered": True, **fields}
    return Timestamps(**values)  # type: ignore[arg-type]


CASES = {
    "plain HTTP, connection opened for it: TCP only": (
        answered(connection_start=101.0, tcp_setup=101.25, response_start=102.0,
                 response_end=103.0),
        Phases(connect_ms=250.0, ttfb_ms=750.0, duration_ms=3000.0),
    ),
    "HTTPS (intercepted, transparent TLS, upgrade): TCP and TLS, which ttfb leaves out": (
        answered(connection_start=101.0, tcp_setup=101.25, tls=True, tls_setup=101.75,
                 response_start=102.0, response_end=103.0),
        Phases(connect_ms=750.0, ttfb_ms=250.0, duration_ms=3000.0),
    ),
    "a reused connection (it started before the request): no connect": (
        answered(connection_start=90.0, tcp_setup=90.1, tls=True, tls_setup=90.2,
                 response_start=101.0, response_end=101.5),
        Phases(connect_ms=None, ttfb_ms=500.0, duration_ms=1500.0),
    ),
    "the queue wait is neither connect nor ttfb": (
        answered(queue_ms=2000.0, connection_start=90.0, tcp_setup=90.1,
                 response_start=103.0, response_end=103.5),
        Phases(connect_ms=None, ttfb_ms=500.0, duration_ms=3500.0),
    ),
    "a queue wait before a new connection: ttfb starts once it is ready": (
        answered(queue_ms=500.0, connection_start=101.0, tcp_setup=101.5,
                 response_start=102.0, response_end=102.0),
        Phases(connect_ms=500.0, ttfb_ms=500.0, duration_ms=2000.0),
    ),
    "a TLS handshake with the receiver that failed: no connect, no ttfb": (
        Timestamps(**READ, connection_start=101.0, tcp_setup=101.25, tls=True),  # type: ignore[arg-type]
        Phases(connect_ms=None, ttfb_ms=None, duration_ms=10000.0),
    ),
    "refused before connecting (no connection, no response)": (
        Timestamps(**READ),  # type: ignore[arg-type]
        Phases(connect_ms=None, ttfb_ms=None, duration_ms=10000.0),
    ),
    "refused after the receiver answered (the sender got the refusal)": (
        Timestamps(**READ, connection_start=101.0, tcp_setup=101.25,  # type: ignore[arg-type]
                   response_start=102.0, response_end=109.0),
        Phases(connect_ms=250.0, ttfb_ms=None, duration_ms=9000.0),
    ),
    "a passthrough tunnel: TCP only, no ttfb, its whole life": (
        Timestamps(request_start=100.0, request_end=None, now=130.0, connection_start=100.5,
                   tcp_setup=100.75, tls=True, response_start=100.8, response_end=100.8,
                   answered=True, tunnel=True),
        Phases(connect_ms=250.0, ttfb_ms=None, duration_ms=30000.0),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_mode_measures_its_phases(case: str) -> None:
    timestamps, expected = CASES[case]
    assert measure(timestamps) == expected
