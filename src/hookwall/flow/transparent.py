"""What a transparent listener's connection tells: that it was redirected, and to where.

mitmproxy's transparent mode reads the destination the sender dialled from the redirected
socket (SO_ORIGINAL_DST) and keeps it as the client connection's ``sockname`` (and the first
server address). That destination is the sender's choice, so it is judged like any other
(``DestinationGuard``) and never connected to unless the guard pinned it.
"""

from __future__ import annotations

from mitmproxy import connection
from mitmproxy.proxy.mode_specs import TransparentMode


def is_transparent(client: connection.Client) -> bool:
    """Whether this connection came to a transparent listener (redirected by the kernel)."""
    return isinstance(client.proxy_mode, TransparentMode)


def original_destination(client: connection.Client) -> tuple[str, int] | None:
    """The address the sender dialled before the kernel redirected it to hookwall."""
    if not is_transparent(client) or client.sockname is None:
        return None
    host, port = client.sockname[0], client.sockname[1]
    return str(host), int(port)
