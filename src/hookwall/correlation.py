"""Which webhook event a request carries, so all attempts of one event can be linked.

Senders that follow a convention already send a stable event id; retries keep it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# In order of preference; names are lower-case.
ID_HEADERS: tuple[str, ...] = ("webhook-id", "svix-id", "x-github-delivery")


def webhook_id(headers: Mapping[str, str], extra: Iterable[str] = ()) -> str | None:
    """The first non-empty event id among the policy's own header and the conventional ones."""
    for name in (*extra, *ID_HEADERS):
        value = headers.get(name)
        if value and value.strip():
            return value.strip()
    return None
