"""The ``redirects`` section of defaults and destinations (merged field by field).

``deny`` is the default (the Standard Webhooks spec advises treating a 3xx as a failure);
what each mode means is ``redirects.decide``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from hookwall.config.checker import Checker
from hookwall.config.overrides import Override
from hookwall.config.shapes import Fields, Flag, OneOf, Whole
from hookwall.config.yamlnodes import YNode

__all__ = [
    "REDIRECTS",
    "MethodChoice",
    "RedirectMode",
    "RedirectSettings",
    "Scope",
    "check_redirects",
]

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


REDIRECTS = Fields(
    {
        "mode": OneOf(
            get_args(RedirectMode),
            doc="deny (default): a 3xx is refused; pass: the sender gets it; follow: hookwall "
            "follows it, judging every hop",
        ),
        "max_hops": Whole(1, 10, doc="redirects followed at most (default 3)"),
        "scope": OneOf(get_args(Scope), doc="where a followed redirect may go"),
        "https_only": Flag(doc="follow only to https:// locations"),
        "allow_downgrade": Flag(doc="follow from https:// to http://"),
        "method": OneOf(
            get_args(MethodChoice), doc="for 301/302/303: keep the method and body, or GET"
        ),
        "keep_credentials": Flag(doc="keep Authorization, Cookie, ... to another origin"),
    },
    doc="what hookwall does with a receiver's redirect",
)


def check_redirects(checker: Checker, node: YNode, path: str) -> Override:
    mapping = checker.mapping(node, path)
    if mapping is None:
        return ()
    checker.keys(mapping, path, REDIRECTS.names)
    out: list[tuple[str, object]] = []
    for key, entry in mapping.entries.items():
        if key in REDIRECTS.fields:
            value = REDIRECTS.reader(key).read(checker, entry.value, f"{path}.{key}")
            if value is not None:
                out.append((key, value))
    return tuple(out)
