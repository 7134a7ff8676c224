"""What the exchange event's ``connect_ms``, ``ttfb_ms`` and ``duration_ms`` measure, from
plain timestamps (seconds, as mitmproxy records them), so that the rules can be read and
tested without a flow.

mitmproxy's ``connection_strategy`` is lazy in hookwall: the receiver's connection is opened
after the request was read, judged and admitted (``request`` hook), for the exchange that
needs it. So a connection that started after the exchange's request did was opened for it,
and one that started before is a reused keep-alive connection, whose setup was paid by an
earlier exchange.

- ``connect_ms``: from the start of the TCP connect to the receiver until the connection
  could carry the request: the TCP handshake, plus, when hookwall speaks TLS to the receiver
  (intercepted HTTPS, a transparent listener's TLS, ``upgrade``), the TLS handshake with
  the certificate checked. A passthrough tunnel's is TCP only: the TLS inside is the
  sender's. None on a reused connection, and when no connection became ready (refused
  before connecting, connect or handshake failed: ``error`` says why).
- ``ttfb_ms``: from when the request could go out (read from the sender, out of the queue,
  on a ready connection) until the receiver's response head arrived: the receiver's own
  time, plus the network. Neither the queue wait (``queue_ms``) nor the connect is in it.
  None when the receiver did not answer, when hookwall refused the exchange (also after
  the receiver answered: the sender got the refusal), and for a tunnel (no HTTP seen).
  After a followed redirect or a retry, it is the first receiver's answer (the 3xx, the
  503): each hop or attempt is an event of its own, with its own phases.
- ``duration_ms``: from when the sender's request head was read (a tunnel's: its
  CONNECT's) until the response's last byte was read, or, without a response, until the
  event is logged; a tunnel's, until it closed (its event is logged then).
"""

from __future__ import annotations

from dataclasses import dataclass

from hookwall.deliveries.event import ms


@dataclass(frozen=True, slots=True)
class Timestamps:
    """One exchange's timestamps; None where the phase never happened."""

    request_start: float
    request_end: float | None
    now: float  # when the event is built
    queue_ms: float | None = None  # the flood-control wait, between request_end and sending
    # The receiver's connection (mitmproxy's Server): when its TCP connect started, when it
    # completed, whether hookwall speaks TLS on it, and when that handshake completed.
    connection_start: float | None = None
    tcp_setup: float | None = None
    tls: bool = False
    tls_setup: float | None = None
    response_start: float | None = None  # the response head, read
    response_end: float | None = None
    answered: bool = False  # the receiver's response is what the sender got
    tunnel: bool = False  # a passthrough tunnel's event, logged when it closed: no HTTP seen


@dataclass(frozen=True, slots=True)
class Phases:
    connect_ms: float | None
    ttfb_ms: float | None
    duration_ms: float | None


def opened_for(t: Timestamps) -> bool:
    """Whether the receiver's connection was opened for this exchange (not reused)."""
    return (
        t.connection_start is not None
        and t.tcp_setup is not None
        and t.connection_start >= t.request_start
    )


def ready_at(t: Timestamps) -> float | None:
    """When a connection opened for this exchange could carry the request: after TCP, and
    after TLS when hookwall speaks TLS to the receiver. None if it never could."""
    if not opened_for(t):
        return None
    # A tunnel's connection may be marked for TLS (mitmproxy stacked the layer before the
    # ClientHello said passthrough), but hookwall never speaks TLS on it.
    return t.tls_setup if t.tls and not t.tunnel else t.tcp_setup


def measure(t: Timestamps) -> Phases:
    ready = ready_at(t)
    connect = ms(t.connection_start, ready) if ready is not None else None
    ttfb = None
    if t.answered and not t.tunnel and t.request_end is not None:
        sent = t.request_end + max(0.0, t.queue_ms or 0.0) / 1000
        if ready is not None:
            sent = max(sent, ready)
        ttfb = ms(sent, t.response_start)
    end = t.now if t.tunnel else (t.response_end or t.now)  # a tunnel's 200 is not its end
    return Phases(connect, ttfb, ms(t.request_start, end))
