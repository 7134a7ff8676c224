"""YAML documents as small trees that remember where every node came from.

Plain ``yaml.safe_load`` forgets positions and silently lets a duplicate key win; both
would make policy errors vague or invisible. We compose the node graph (libyaml when it is
installed, else ``MarkedLoader``), use the loader only to construct scalars, and build the
tree ourselves (``config.yamlbuild``; the node types are in ``config.yamlnodes``).

A policy file is read by a running proxy on every reload, so a hostile one must be refused
quickly and cheaply: at most ``MAX_FILE_BYTES`` a file and ``MAX_POLICY_BYTES`` for all the
files of a policy directory together (``ReadBudget``), nesting at most ``MAX_DEPTH`` deep, and
aliases (``*name``, ``<<: *name``) may add at most ``MAX_ALIAS_VALUES`` values by their
expansion. Anchors stay usable for what policies use them for (sharing a destination's
settings); "billion laughs" is refused at the alias that crosses the budget, while composing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from hookwall.config.errors import Location, PolicyIssue
from hookwall.config.yamlbuild import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    Bounds,
    Builder,
    MarkedLoader,
    mark_location,
    too_deep,
)
from hookwall.config.yamlnodes import YNode

__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_POLICY_BYTES",
    "ReadBudget",
    "load_yaml_file",
    "load_yaml_text",
]

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_POLICY_BYTES = 32 * 1024 * 1024  # every file of a policy directory together


# libyaml composes several times faster (policies can have thousands of rules). It only
# serves files that parse cleanly: on any YAML error the file is parsed again with
# MarkedLoader, so error messages never depend on whether libyaml is installed.
FAST_LOADER: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _position_location(file: str, text: str, position: int) -> Location:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return Location(file, line, column)


def _reader_issue(file: str, text: str, exc: yaml.reader.ReaderError) -> PolicyIssue:
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return PolicyIssue(
        _position_location(file, text, exc.position),
        f"YAML cannot contain the character U+{code:04X} ({exc.reason}); remove it",
    )


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    if exc.problem == "but found another document":
        return "a policy file holds one YAML document; remove the '---' or split the file"
    alias_trouble = exc.context == "while scanning an alias" or (
        exc.problem is not None and exc.problem.startswith("found undefined alias")
    )
    if alias_trouble:
        # By far the usual cause: an unquoted wildcard host pattern.
        return (
            "YAML syntax error: an unquoted value starting with '*' is read as an alias; "
            'quote wildcard host patterns: "*.example.org", "*"'
        )
    message = f"YAML syntax error: {exc.problem or exc.context}"
    if exc.context and exc.problem and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return message + "; check indentation, colons and quoting"


def _load_fast(text: str, file: str, issues: list[PolicyIssue]) -> tuple[bool, YNode | None]:
    """The libyaml path: (True, tree or None if empty), or (False, None) to use MarkedLoader.

    Any trouble, a bound crossed included, goes to MarkedLoader, which says where exactly.
    """
    if FAST_LOADER is None:
        return False, None
    loader = FAST_LOADER(text)
    found: list[PolicyIssue] = []
    try:
        try:
            node = loader.get_single_node()
        except (yaml.YAMLError, RecursionError):
            return False, None
        if node is None:
            issues.append(
                PolicyIssue(Location(file, 1, 1), "empty policy file; start it with 'version: 1'")
            )
            return True, None
        try:
            tree = Builder(loader, file, found).build(node)
        except (Bounds, RecursionError):
            return False, None
        issues.extend(found)
        return True, tree
    finally:
        loader.dispose()


def load_yaml_text(text: str, file: str, issues: list[PolicyIssue]) -> YNode | None:
    """Parse one YAML document; on failure append issues and return None."""
    done, tree = _load_fast(text, file, issues)
    if done:
        return tree
    try:
        # The reader rejects non-printable characters already while constructing.
        loader = MarkedLoader(text)
    except yaml.reader.ReaderError as exc:
        issues.append(_reader_issue(file, text, exc))
        return None
    try:
        node = loader.get_single_node()
        if node is None:
            issues.append(
                PolicyIssue(Location(file, 1, 1), "empty policy file; start it with 'version: 1'")
            )
            return None
        return Builder(loader, file, issues).build(node)
    except Bounds as exc:
        where = exc.location
        if exc.mark is not None:
            where = Location(file, exc.mark[0] + 1, exc.mark[1] + 1)
        issues.append(PolicyIssue(where or Location(file, 1, 1), exc.message))
        return None
    except RecursionError:  # a backstop: the bounds above are meant to come first
        issues.append(PolicyIssue(Location(file, 1, 1), too_deep()))
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = mark_location(file, mark) if mark is not None else Location(file, 1, 1)
        issues.append(PolicyIssue(location, _syntax_message(exc)))
        return None
    except yaml.reader.ReaderError as exc:
        issues.append(_reader_issue(file, text, exc))
        return None
    finally:
        loader.dispose()


def _byte_location(file: str, data: bytes, offset: int) -> Location:
    before = data[:offset]
    return Location(file, before.count(b"\n") + 1, offset - (before.rfind(b"\n") + 1) + 1)


@dataclass(slots=True)
class ReadBudget:
    """The bytes a policy may still read: one per ``load_policy``, so a directory of many
    large files is bounded as a whole, not only file by file."""

    left: int = MAX_POLICY_BYTES

    @property
    def spent(self) -> bool:
        return self.left < 0


def load_yaml_file(
    path: Path, file: str, issues: list[PolicyIssue], budget: ReadBudget | None = None
) -> YNode | None:
    """Read and parse a policy file; ``file`` is the name used in error locations."""
    budget = budget if budget is not None else ReadBudget()
    limit = min(MAX_FILE_BYTES, budget.left)
    try:
        with path.open("rb") as stream:
            # One byte past the bound is enough to know; a huge file is never read whole.
            data = stream.read(limit + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        issues.append(PolicyIssue(None, f"{file}: cannot read policy file: {reason}"))
        return None
    budget.left -= len(data)
    if len(data) > limit and limit < MAX_FILE_BYTES:
        issues.append(
            PolicyIssue(
                _byte_location(file, data, limit),
                f"the policy's files together are larger than "
                f"{MAX_POLICY_BYTES // (1024 * 1024)} MiB (this file crosses the limit here; "
                "the files after it were not read); a policy is kilobytes of YAML: remove "
                "generated or copied files from the policy directory",
            )
        )
        return None
    if len(data) > MAX_FILE_BYTES:
        issues.append(
            PolicyIssue(
                _byte_location(file, data, MAX_FILE_BYTES),
                f"policy file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB (this is where "
                "the limit is crossed); split it into a directory of smaller files",
            )
        )
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        location = _byte_location(file, data, exc.start)
        issues.append(PolicyIssue(location, "not valid UTF-8; save the policy file as UTF-8"))
        return None
    return load_yaml_text(text, file, issues)
