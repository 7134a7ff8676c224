"""The Y-node tree a policy file becomes: every value with the file:line:col it came from.

Section parsers (``<concern>/settings.py``) read these through ``config.checker``; the loader
(``config.yamltree``) builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookwall.config.errors import Location

__all__ = ["YEntry", "YList", "YMap", "YNode", "YScalar", "describe"]


@dataclass(slots=True, eq=False)
class YScalar:
    """A constructed scalar (str, int, float, bool, None, ...) and where it was written."""

    value: object
    location: Location


@dataclass(slots=True, eq=False)
class YList:
    items: list[YNode]
    location: Location


@dataclass(slots=True, eq=False)
class YEntry:
    """One ``key: value`` pair; errors about the key itself point at ``key_location``."""

    key_location: Location
    value: YNode


@dataclass(slots=True, eq=False)
class YMap:
    entries: dict[str, YEntry]
    location: Location


YNode = YScalar | YList | YMap


def describe(node: YNode) -> str:
    """How a value reads in an error message: 'intercep' quoted, null, a list, a mapping."""
    if isinstance(node, YList):
        return "a list"
    if isinstance(node, YMap):
        return "a mapping"
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    return f"a {type(value).__name__}"
