"""Field-wise overrides: a destination writes only what differs from the defaults.

A section parser returns an ``Override`` (the fields as written, in order); the policy merges
it onto the defaults once, at load time, with ``apply``. ``limits: {concurrency: 2}`` keeps
the default queue.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Override", "apply"]

Override = tuple[tuple[str, object], ...]


def apply[T: DataclassInstance](base: T, override: Override) -> T:
    """``base`` with the fields an override names replaced (``dataclasses.replace``)."""
    return replace(base, **dict(override)) if override else base
