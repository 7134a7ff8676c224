"""From YAML text to Y-nodes within bounds: the composer that counts, the builder that converts.

``MarkedLoader`` composes with PyYAML's pure-Python composer, counting nesting depth (so
Python recursion never overflows) and the values each alias adds by its expansion; the
``Builder`` turns a composed graph (from either loader) into Y-nodes once per node, counting
alias expansion again (the libyaml path has no composer of ours), and reports duplicate keys,
odd tags and non-string keys. A crossed bound raises ``Bounds`` at the node that crossed it.
"""

from __future__ import annotations

import yaml
from yaml.constructor import SafeConstructor

from hookwall.config.errors import Location, PolicyIssue
from hookwall.config.yamlnodes import YEntry, YList, YMap, YNode, YScalar, describe

__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "Bounds",
    "Builder",
    "MarkedLoader",
    "mark_location",
    "too_deep",
]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"

MAX_DEPTH = 64
MAX_ALIAS_VALUES = 100_000


class Bounds(Exception):
    """A bound of this module crossed: where, and what to tell the operator."""

    def __init__(
        self, mark: tuple[int, int] | None, location: Location | None, message: str
    ) -> None:
        super().__init__(message)
        self.mark = mark  # (line, column), 0-based as in yaml marks
        self.location = location
        self.message = message


def too_deep() -> str:
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
                raise Bounds(mark, None, _recursive())
            self._copied += size
            if self._copied > MAX_ALIAS_VALUES:
                raise Bounds(mark, None, _too_many())
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Bounds(self._mark(), None, too_deep())
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:  # pragma: no cover - the composer always returns a node here
            return None
        self._sizes[id(node)] = _expanded_size(node, self._sizes)
        return node


def mark_location(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class Builder:
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
        location = mark_location(self._file, node.start_mark)
        if cached is not None:
            self._copied += self._sizes[key]
            if self._copied > MAX_ALIAS_VALUES:
                raise Bounds(None, location, _too_many())
            return cached
        if key in self._active:
            self._issue(location, _recursive())
            return YScalar(None, location)
        if depth > MAX_DEPTH:
            raise Bounds(None, location, too_deep())
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
            key_location = mark_location(self._file, key_node.start_mark)
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
