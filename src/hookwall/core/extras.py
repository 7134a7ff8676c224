"""What to tell a user who asked for something an extra provides (``hookwall[redis]``,
``hookwall[uvloop]``) that is not installed: the install command, with the extra's version
range as the installed package's metadata states it (``pipx inject`` installs any version
otherwise, and uvloop 0.23 does not work with mitmproxy's task factory).
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Sequence

__all__ = ["install_hint", "requirement"]

_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def requirement(extra: str, requires: Sequence[str] | None = None) -> str:
    """The requirement the extra adds (``uvloop<0.23,>=0.21``), without its markers; the
    extra's own name when the metadata says nothing (e.g. hookwall not installed)."""
    if requires is None:
        try:
            requires = importlib.metadata.requires("hookwall") or []
        except importlib.metadata.PackageNotFoundError:
            requires = []
    for line in requires:
        spec, _, marker = line.partition(";")
        if extra in _EXTRA_MARKER.findall(marker):
            return spec.strip()
    return extra


def install_hint(extra: str) -> str:
    """``install hookwall[EXTRA]: ...`` with the pip and the pipx command."""
    return (
        f"install hookwall[{extra}]: pip install 'hookwall[{extra}]' (where pipx installed "
        f"hookwall: pipx inject hookwall '{requirement(extra)}')"
    )
