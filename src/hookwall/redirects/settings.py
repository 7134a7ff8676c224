"""The ``redirects`` section of defaults and destinations (merged field by field).

``deny`` is the default (the Standard Webhooks spec advises treating a 3xx as a failure);
what each mode means is ``redirects.decide``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hookwall.config.checker import Checker
from hookwall.config.overrides import Override
from hookwall.config.yamlnodes import YNode, YScalar

__all__ = ["MethodChoice", "RedirectMode", "RedirectSettings", "Scope", "check_redirects"]

RedirectMode = Literal["deny", "pass", "follow"]
Scope = Literal["same_host", "same_site", "any"]
MethodChoice = Literal["keep-method", "get"]


@dataclass(frozen=True, slots=True)
class RedirectSettings:
    mode: RedirectMode = "deny"
    max_hops: int = 3
    scope: Scope = "same_site"
    https_only: bool = False
    allow_downgrade: bool = False
    method: MethodChoice = (
        "keep-method"  # for 301/302/303: keep the method and body, or switch to GET
    )
    keep_credentials: bool = False  # Authorization, Cookie, ... also to another origin


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


def check_redirects(checker: Checker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, _KEYS)
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
