"""The ``redirects`` section of defaults and destinations (merged field by field)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookwall.config.yamltree import YNode, YScalar
from hookwall.limits.settings import Override

if TYPE_CHECKING:
    from hookwall.policy.schema import _FileChecker

_KEYS = (
    "mode",
    "max_hops",
    "scope",
    "https_only",
    "allow_downgrade",
    "method",
    "keep_credentials",
)
_FLAGS = ("https_only", "allow_downgrade", "keep_credentials")
_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("deny", "pass", "follow"),
    "scope": ("same_host", "same_site", "any"),
    "method": ("keep-method", "get"),
}


def check_redirects(checker: _FileChecker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, _KEYS, "redirects")
    out: list[tuple[str, object]] = []
    for key, entry in mapping.entries.items():
        where, value = f"{path}.{key}", entry.value
        if key in _CHOICES:
            choice = checker.choice(value, where, _CHOICES[key])
            if choice is not None:
                out.append((key, choice))
        elif key in _FLAGS:
            flag = checker.boolean(value, where)
            if flag is not None:
                out.append((key, flag))
        elif key == "max_hops":
            hops = value.value if isinstance(value, YScalar) else None
            if not isinstance(hops, int) or isinstance(hops, bool) or not 1 <= hops <= 10:
                checker.expected(value, where, "a whole number from 1 to 10")
            else:
                out.append((key, hops))
    return tuple(out)
