"""YAML documents as small trees that remember where every node came from.

Plain ``yaml.safe_load`` forgets positions and silently lets a duplicate key win; both
would make policy errors vague or invisible. We compose the node graph with a SafeLoader
subclass, use it only to construct scalars, and build the tree ourselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor

from hookwall.policy.errors import Location, PolicyIssue

__all__ = ["YList", "YMap", "YNode", "YScalar", "describe", "load_yaml_file", "load_yaml_text"]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


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


class MarkedLoader(yaml.SafeLoader):
    """SafeLoader that keeps node marks: we only ever compose with it and construct scalars."""


# libyaml composes several times faster (policies can have thousands of rules). It only
# serves files that parse cleanly: on any YAML error the file is parsed again with
# MarkedLoader, so error messages never depend on whether libyaml is installed.
FAST_LOADER: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _mark_location(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed node graph into Y-nodes, reporting duplicates and odd tags."""

    def __init__(self, loader: SafeConstructor, file: str, issues: list[PolicyIssue]) -> None:
        self._loader = loader
        self._file = file
        self._issues = issues
        # Aliases share nodes: converting each node once keeps "billion laughs" linear.
        self._done: dict[int, YNode] = {}
        self._active: set[int] = set()

    def _issue(self, location: Location, message: str) -> None:
        self._issues.append(PolicyIssue(location, message))

    def build(self, node: yaml.Node) -> YNode:
        key = id(node)
        cached = self._done.get(key)
        if cached is not None:
            return cached
        location = _mark_location(self._file, node.start_mark)
        if key in self._active:
            self._issue(location, "recursive YAML alias; a value cannot contain itself")
            return YScalar(None, location)
        self._active.add(key)
        try:
            result = self._build(node, location)
        finally:
            self._active.discard(key)
        self._done[key] = result
        return result

    def _build(self, node: yaml.Node, location: Location) -> YNode:
        if isinstance(node, yaml.ScalarNode):
            try:
                return YScalar(self._loader.construct_object(node, deep=True), location)
            except yaml.MarkedYAMLError as exc:
                self._issue(location, f"invalid YAML value: {exc.problem}")
                return YScalar(None, location)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._issue(location, f"unsupported YAML tag {node.tag!r}; remove it")
            return YList([self.build(item) for item in node.value], location)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._issue(location, f"unsupported YAML tag {node.tag!r}; remove it")
            return self._mapping(node, location)
        raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover

    def _mapping(self, node: yaml.MappingNode, location: Location) -> YMap:
        own = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
        try:
            # Resolves '<<: *anchor' merges; merged pairs come first, the node's own pairs last.
            self._loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            self._issue(location, f"invalid YAML merge: {exc.problem}")
            return YMap({}, location)
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        merged_count = len(pairs) - own
        entries: dict[str, YEntry] = {}
        first_seen: dict[str, Location] = {}
        for index, (key_node, value_node) in enumerate(pairs):
            key_location = _mark_location(self._file, key_node.start_mark)
            key = self._key(key_node, key_location)
            if key is None:
                continue
            if index >= merged_count:
                previous = first_seen.get(key)
                if previous is not None:
                    self._issue(
                        key_location,
                        f"duplicate key {key!r} (first defined at line {previous.line}); "
                        "remove one of them",
                    )
                    continue
                first_seen[key] = key_location
            entries[key] = YEntry(key_location, self.build(value_node))
        return YMap(entries, location)

    def _key(self, key_node: yaml.Node, key_location: Location) -> str | None:
        if isinstance(key_node, yaml.ScalarNode):
            try:
                key = self._loader.construct_object(key_node, deep=True)
            except yaml.MarkedYAMLError as exc:
                self._issue(key_location, f"invalid YAML key: {exc.problem}")
                return None
            if isinstance(key, str):
                return key
            if isinstance(key, bool) and not key_node.style:
                # YAML 1.1 reads a bare `on`/`off`/`yes`/`no` key as a boolean; every key in
                # a policy is a name, so take it as written (`retries: {on: [503]}`).
                return str(key_node.value)
            shown = describe(YScalar(key, key_location))
        else:
            shown = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
        self._issue(key_location, f"keys must be strings; got {shown}")
        return None


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
    """The libyaml path: (True, tree or None if empty), or (False, None) to use MarkedLoader."""
    if FAST_LOADER is None:
        return False, None
    loader = FAST_LOADER(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError:
            return False, None
        if node is None:
            issues.append(
                PolicyIssue(Location(file, 1, 1), "empty policy file; start it with 'version: 1'")
            )
            return True, None
        return True, _Builder(loader, file, issues).build(node)
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
        return _Builder(loader, file, issues).build(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = _mark_location(file, mark) if mark is not None else Location(file, 1, 1)
        issues.append(PolicyIssue(location, _syntax_message(exc)))
        return None
    except yaml.reader.ReaderError as exc:
        issues.append(_reader_issue(file, text, exc))
        return None
    finally:
        loader.dispose()


def load_yaml_file(path: Path, file: str, issues: list[PolicyIssue]) -> YNode | None:
    """Read and parse a policy file; ``file`` is the name used in error locations."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        issues.append(PolicyIssue(None, f"{file}: cannot read policy file: {reason}"))
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        location = Location(
            file, before.count(b"\n") + 1, exc.start - (before.rfind(b"\n") + 1) + 1
        )
        issues.append(PolicyIssue(location, "not valid UTF-8; save the policy file as UTF-8"))
        return None
    return load_yaml_text(text, file, issues)
