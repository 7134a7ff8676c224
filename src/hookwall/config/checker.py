"""The checker every section parser reads YAML nodes with: shapes, units, located issues.

A section parser (``<concern>/settings.py``) asks the checker for a mapping, a string, a
duration, ...; each question either returns the value or records an issue with file:line:col
and returns None (or a placeholder), so one load reports every problem of a file instead of
stopping at the first. The checker knows no section: what a key means is the parser's.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeGuard

from hookwall.config.errors import Location, PolicyIssue
from hookwall.config.units import parse_duration, parse_size
from hookwall.config.yamlnodes import YList, YMap, YNode, YScalar, describe

__all__ = ["Checker", "is_whole", "subpath"]


def subpath(path: str, key: str) -> str:
    """``defaults`` + ``limits`` -> ``defaults.limits``; the top level has the empty path."""
    return f"{path}.{key}" if path else key


def is_whole(value: object) -> TypeGuard[int]:
    """An int written as a number (YAML's ``true`` is an int to Python, not to an operator)."""
    return isinstance(value, int) and not isinstance(value, bool)


class Checker:
    """Reads the nodes of one file; every method returns a value or None after an issue.

    ``base_dir`` is the file's directory: relative paths in a policy (``file:`` secrets,
    ``ca_bundle``) are resolved against it, not against the working directory.
    ``read_secrets`` False (``hookwall check --no-secrets``): secret references are checked
    for their shape only, and stand-ins replace the values (``config/secrets.py``).
    """

    def __init__(self, file: str, issues: list[PolicyIssue], *, read_secrets: bool = True) -> None:
        self.file = file
        self.base_dir = Path(file).parent
        self.issues = issues
        self.read_secrets = read_secrets

    def issue(self, location: Location, message: str) -> None:
        self.issues.append(PolicyIssue(location, message))

    def expected(self, node: YNode, path: str, what: str, hint: str = "") -> None:
        suffix = f"; {hint}" if hint else ""
        self.issue(node.location, f"{path}: expected {what}; got {describe(node)}{suffix}")

    def keys(
        self,
        mapping: YMap,
        path: str,
        known: Sequence[str],
        misplaced: Mapping[str, str] | None = None,
    ) -> None:
        """An issue per unknown key: the pointed hint of ``misplaced`` for a key that is
        valid elsewhere (it beats "unknown key"), else the closest known key."""
        for key, entry in mapping.entries.items():
            if key in known:
                continue
            where = subpath(path, key)
            hint = misplaced.get(key) if misplaced else None
            if hint is not None:
                self.issue(entry.key_location, f"{where}: {hint}")
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            self.issue(entry.key_location, f"{where}: unknown key {key!r}; {hint}")

    def mapping(self, node: YNode, path: str, what: str = "a mapping") -> YMap | None:
        """A mapping, or None for null (an empty section whose contents are commented out)."""
        if isinstance(node, YMap):
            return node
        if not (isinstance(node, YScalar) and node.value is None):
            self.expected(node, path, what)
        return None

    def items(self, node: YNode, path: str, what: str, hint: str) -> list[YNode] | None:
        if isinstance(node, YList):
            return node.items
        self.expected(node, path, what, hint)
        return None

    def string(self, node: YNode, path: str, what: str = "a string") -> str | None:
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return node.value
        self.expected(node, path, what)
        return None

    def boolean(self, node: YNode, path: str) -> bool | None:
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        self.expected(node, path, "true or false")
        return None

    def choice[C: str](self, node: YNode, path: str, choices: tuple[C, ...]) -> C | None:
        if isinstance(node, YScalar) and node.value in choices:
            return node.value
        self.expected(node, path, f"one of {', '.join(choices)}")
        return None

    def existing_file(self, node: YNode, path: str, what: str) -> str | None:
        """The absolute path of a file that exists, relative paths taken from ``base_dir``."""
        text = self.string(node, path, what)
        if text is None:
            return None
        found = self.base_dir / text
        if not found.is_file():
            self.issue(
                node.location,
                f"{path}: file not found: {os.path.abspath(found)} (a relative path is resolved "
                "against the policy file's directory)",
            )
            return None
        return os.path.abspath(found)

    def duration(self, node: YNode, path: str, *, positive: bool) -> float:
        """Seconds from '2s', '500ms', ...; 0.0 after an issue (the load fails anyway)."""
        value = node.value if isinstance(node, YScalar) else None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.expected(node, path, "a duration like '2s' or '500ms'")
            return 0.0
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.issue(node.location, f"{path}: {exc}")
            return 0.0
        if positive and seconds <= 0:
            self.issue(node.location, f"{path}: must be longer than 0s")
        return seconds

    def size(self, node: YNode, path: str, example: str) -> int | None:
        """Bytes from '1MiB', '256KiB', ...; the bounds are the caller's (they word them)."""
        value = node.value if isinstance(node, YScalar) else None
        if not isinstance(value, str | int) or isinstance(value, bool):
            self.expected(node, path, f"a size like {example}")
            return None
        try:
            return parse_size(value)
        except ValueError as exc:
            self.issue(node.location, f"{path}: {exc}")
            return None
