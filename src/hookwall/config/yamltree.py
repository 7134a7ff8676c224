"""YAML documents as small trees that remember where every node came from.

Plain ``yaml.safe_load`` forgets positions and silently lets a duplicate key win; both
would make policy errors vague or invisible. We compose the node graph with a SafeLoader
subclass, use it only to construct scalars, and build the tree ourselves.

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
from yaml.constructor import SafeConstructor

from hookwall.config.errors import Location, PolicyIssue

__all__ = [
    "ReadBudget",
    "YList",
    "YMap",
    "YNode",
    "YScalar",
    "describe",
    "load_yaml_file",
    "load_yaml_text",
]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_POLICY_BYTES = 32 * 1024 * 1024  # every file of a policy directory together
MAX_DEPTH = 64
MAX_ALIAS_VALUES = 100_000


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


class _Bounds(Exception):
    """A bound of this module crossed: where, and what to tell the operator."""

    def __init__(
        self, mark: tuple[int, int] | None, location: Location | None, message: str
    ) -> None:
        super().__init__(message)
        self.mark = mark  # (line, column), 0-based as in yaml marks
        self.location = location
        self.message = message


def _too_deep() -> str:
    return (
        f"YAML nested more than {MAX_DEPTH} levels deep; a policy never needs that, "
        "flatten the structure"
    )


def _too_many() -> str:
    return (
        f"YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values (each use of an alias "
        "counts everything it stands for); write the values out or use fewer aliases"
    )


def _recursive() -> str:
    return "recursive YAML alias; a value cannot contain itself"


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """A node's size with aliases expanded, from its children's (already known) sizes."""
    if isinstance(node, yaml.SequenceNode):
        return 1 + sum(sizes.get(id(child), 1) for child in node.value)
    if isinstance(node, yaml.MappingNode):
        return 1 + sum(sizes.get(id(k), 1) + sizes.get(id(v), 1) for k, v in node.value)
    return 1


class MarkedLoader(yaml.SafeLoader):
    """SafeLoader that keeps node marks: we only ever compose with it and construct scalars.

    Its composer counts as it goes: nesting depth (so Python recursion never overflows) and
    the values each alias adds by expansion, refusing at the alias's own position.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._copied = 0
        self._sizes: dict[int, int] = {}

    def _mark(self) -> tuple[int, int] | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        return (mark.line, mark.column) if mark is not None else None

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self._mark()
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # its anchor is still being composed
                raise _Bounds(mark, None, _recursive())
            self._copied += size
            if self._copied > MAX_ALIAS_VALUES:
                raise _Bounds(mark, None, _too_many())
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Bounds(self._mark(), None, _too_deep())
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:  # pragma: no cover - the composer always returns a node here
            return None
        self._sizes[id(node)] = _expanded_size(node, self._sizes)
        return node


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
        # Aliases share nodes: converting each node once keeps "billion laughs" linear, and
        # the values aliases add are counted against MAX_ALIAS_VALUES (the libyaml path has
        # no composer of ours to count them).
        self._done: dict[int, YNode] = {}
        self._sizes: dict[int, int] = {}
        self._copied = 0
        self._active: set[int] = set()

    def _issue(self, location: Location, message: str) -> None:
        self._issues.append(PolicyIssue(location, message))

    def build(self, node: yaml.Node, depth: int = 1) -> YNode:
        key = id(node)
        cached = self._done.get(key)
        location = _mark_location(self._file, node.start_mark)
        if cached is not None:
            self._copied += self._sizes[key]
            if self._copied > MAX_ALIAS_VALUES:
                raise _Bounds(None, location, _too_many())
            return cached
        if key in self._active:
            self._issue(location, _recursive())
            return YScalar(None, location)
        if depth > MAX_DEPTH:
            raise _Bounds(None, location, _too_deep())
        self._active.add(key)
        try:
            result = self._build(node, location, depth)
        finally:
            self._active.discard(key)
        self._done[key] = result
        self._sizes[key] = _expanded_size(node, self._sizes)
        return result

    def _build(self, node: yaml.Node, location: Location, depth: int) -> YNode:
        if isinstance(node, yaml.ScalarNode):
            try:
                return YScalar(self._loader.construct_object(node, deep=True), location)
            except yaml.MarkedYAMLError as exc:
                self._issue(location, f"invalid YAML value: {exc.problem}")
                return YScalar(None, location)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._issue(location, f"unsupported YAML tag {node.tag!r}; remove it")
            return YList([self.build(item, depth + 1) for item in node.value], location)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._issue(location, f"unsupported YAML tag {node.tag!r}; remove it")
            return self._mapping(node, location, depth)
        raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover

    def _mapping(self, node: yaml.MappingNode, location: Location, depth: int) -> YMap:
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
            entries[key] = YEntry(key_location, self.build(value_node, depth + 1))
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
            tree = _Builder(loader, file, found).build(node)
        except (_Bounds, RecursionError):
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
        return _Builder(loader, file, issues).build(node)
    except _Bounds as exc:
        where = exc.location
        if exc.mark is not None:
            where = Location(file, exc.mark[0] + 1, exc.mark[1] + 1)
        issues.append(PolicyIssue(where or Location(file, 1, 1), exc.message))
        return None
    except RecursionError:  # a backstop: the bounds above are meant to come first
        issues.append(PolicyIssue(Location(file, 1, 1), _too_deep()))
        return None
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
