"""The shape of a policy section, declared once: its parser reads with it, and ``hookwall
schema`` prints it as JSON Schema for editors.

A section parser names its keys with a ``Fields`` shape (``checker.keys(mapping, path,
SHAPE.names)``) and reads each plain value with that key's shape (``Flag``, ``OneOf``,
``Whole``, ``Duration``, ``Size``, ``Text``), whose ``read`` asks the ``Checker``: the value
accepted, the issue recorded and the JSON Schema all come from the one declaration. A value
that needs more than a shape (a CIDR, a host pattern, a secret reference, a scheme's options)
is read by the parser's own code, and its shape there is ``Custom``: the schema fragment
written beside that code. ``tests/unit/policy/test_jsonschema.py`` holds the two to the same
answers for a table of policies.

JSON Schema is draft-07: what the YAML language server (VS Code's YAML extension) reads best.
A pattern carries ``patternErrorMessage`` (the language server's keyword, ignored by other
validators), so an editor says "expected a duration like '2s'", not the regex.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hookwall.config.checker import Checker, is_whole
from hookwall.config.units import DURATION_PATTERN, SIZE_PATTERN
from hookwall.config.yamlnodes import YNode, YScalar

__all__ = [
    "CIDR",
    "AnyOf",
    "Const",
    "Custom",
    "Duration",
    "Fields",
    "Flag",
    "JsonSchema",
    "ListOf",
    "MapOf",
    "Nullable",
    "OneOf",
    "Reader",
    "Shape",
    "Size",
    "Text",
    "Whole",
]

type JsonSchema = dict[str, Any]

# A lookahead for text whose number is not zero (units are letters: any 1-9 is the number's).
_NOT_ZERO = "(?=[^1-9]*[1-9])"


def _not_zero(pattern: str) -> str:
    """``^...`` that also refuses a zero amount ('0s', '0.0KiB')."""
    return f"^{_NOT_ZERO}{pattern.removeprefix('^')}"


@dataclass(frozen=True, kw_only=True)
class Shape:
    """What a value may be. ``doc`` is what an editor shows when hovering the key."""

    doc: str = ""

    def json_schema(self) -> JsonSchema:
        fragment = self._schema()
        if self.doc:
            fragment["description"] = self.doc
        return fragment

    def _schema(self) -> JsonSchema:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Reader(Shape):
    """A shape the checker can read on its own: the value, or None after an issue."""

    def read(self, checker: Checker, node: YNode, path: str) -> object | None:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Flag(Reader):
    def read(self, checker: Checker, node: YNode, path: str) -> bool | None:
        return checker.boolean(node, path)

    def _schema(self) -> JsonSchema:
        return {"type": "boolean"}


@dataclass(frozen=True)
class OneOf(Reader):
    choices: tuple[str, ...]

    def read(self, checker: Checker, node: YNode, path: str) -> str | None:
        return checker.choice(node, path, self.choices)

    def _schema(self) -> JsonSchema:
        return {"enum": list(self.choices)}


@dataclass(frozen=True)
class Text(Reader):
    """A string; ``pattern`` only in the schema (the parser's own code checks what it means)."""

    what: str = "a string"
    pattern: str | None = None

    def read(self, checker: Checker, node: YNode, path: str) -> str | None:
        return checker.string(node, path, self.what)

    def _schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "string"}
        if self.pattern:
            schema["pattern"] = self.pattern
            schema["patternErrorMessage"] = f"expected {self.what}"
        return schema


@dataclass(frozen=True)
class Whole(Reader):
    """A whole number written as one (not ``true``), from ``minimum`` (to ``maximum``)."""

    minimum: int
    maximum: int | None = None

    def read(self, checker: Checker, node: YNode, path: str) -> int | None:
        value = node.value if isinstance(node, YScalar) else None
        if (
            is_whole(value)
            and self.minimum <= value
            and (self.maximum is None or value <= self.maximum)
        ):
            return value
        if self.maximum is None:
            checker.expected(node, path, f"a whole number >= {self.minimum}")
        else:
            checker.expected(node, path, f"a whole number from {self.minimum} to {self.maximum}")
        return None

    def _schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "integer", "minimum": self.minimum}
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


@dataclass(frozen=True)
class Duration(Reader):
    """'2s', '500ms', '5m' or a number of seconds; ``positive``: 0 is refused."""

    positive: bool

    def read(self, checker: Checker, node: YNode, path: str) -> float:
        return checker.duration(node, path, positive=self.positive)

    def _schema(self) -> JsonSchema:
        number: JsonSchema = {"type": "number"}
        number["exclusiveMinimum" if self.positive else "minimum"] = 0
        what = "a duration like '2s', '500ms' or '5m' (units ms, s, m, h, d)"
        if self.positive:
            text = Text(f"{what}, longer than 0s", _not_zero(DURATION_PATTERN))
        else:
            text = Text(what, DURATION_PATTERN)
        return {"anyOf": [text.json_schema(), number]}


@dataclass(frozen=True)
class Size(Reader):
    """'1MiB', '256KiB', '10MB' or a number of bytes, at least ``minimum`` bytes."""

    minimum: int = 1
    example: str = "'1MiB' or '256KiB'"

    def read(self, checker: Checker, node: YNode, path: str) -> int | None:
        size = checker.size(node, path, self.example)
        if size is None or size >= self.minimum:
            return size
        if self.minimum == 1:
            checker.issue(node.location, f"{path}: must be more than 0 bytes")
        else:
            checker.issue(node.location, f"{path}: must be at least {self.minimum} bytes")
        return None

    def _schema(self) -> JsonSchema:
        number = {"type": "integer", "minimum": self.minimum}
        what = f"a size like {self.example}"
        if self.minimum > 0:  # more than 0 bytes (a larger minimum is the reader's to say)
            text = Text(f"{what}, more than 0", _not_zero(SIZE_PATTERN))
        else:
            text = Text(what, SIZE_PATTERN)
        return {"anyOf": [text.json_schema(), number]}


@dataclass(frozen=True)
class Const(Shape):
    value: object

    def _schema(self) -> JsonSchema:
        return {"const": self.value}


@dataclass(frozen=True)
class Custom(Shape):
    """A value the parser's own code reads; ``schema`` is written beside that code."""

    schema: JsonSchema

    def _schema(self) -> JsonSchema:
        return dict(self.schema)


@dataclass(frozen=True)
class Nullable(Shape):
    """``shape``, or null (a key written to switch something inherited off)."""

    shape: Shape

    def _schema(self) -> JsonSchema:
        return {"anyOf": [self.shape.json_schema(), {"type": "null"}]}


@dataclass(frozen=True)
class AnyOf(Shape):
    options: tuple[Shape, ...]

    def _schema(self) -> JsonSchema:
        return {"anyOf": [option.json_schema() for option in self.options]}


@dataclass(frozen=True)
class ListOf(Shape):
    item: Shape
    min_items: int = 0
    unique: bool = False

    def _schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            schema["minItems"] = self.min_items
        if self.unique:
            schema["uniqueItems"] = True
        return schema


@dataclass(frozen=True)
class MapOf(Shape):
    """A mapping of names the operator chooses (``senders``) to values of one shape."""

    value: Shape
    key_pattern: str | None = None

    def _schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "object"}
        if self.key_pattern:
            schema["propertyNames"] = {"pattern": self.key_pattern}
        schema["additionalProperties"] = self.value.json_schema()
        return schema


@dataclass(frozen=True)
class Fields(Shape):
    """A mapping with known keys: the keys ``checker.keys`` accepts, each with its shape.

    ``nullable``: an empty section (``proxy:`` with its contents commented out) is accepted,
    as ``Checker.mapping`` does. ``required`` keys must be written."""

    fields: Mapping[str, Shape]
    required: tuple[str, ...] = ()
    nullable: bool = True
    extra: JsonSchema = field(default_factory=dict)  # e.g. a oneOf across the fields

    def __post_init__(self) -> None:
        unknown = [key for key in self.required if key not in self.fields]
        if unknown:
            raise ValueError(f"required keys that are not fields: {unknown}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def __getitem__(self, key: str) -> Shape:
        return self.fields[key]

    def reader(self, key: str) -> Reader:
        """The shape of ``key`` where the parser reads it with the shape alone."""
        shape = self.fields[key]
        if not isinstance(shape, Reader):
            raise TypeError(f"{key}: {type(shape).__name__} is read by the parser's own code")
        return shape

    def _schema(self) -> JsonSchema:
        schema: JsonSchema = {
            "type": ["object", "null"] if self.nullable and not self.required else "object",
            "properties": {key: shape.json_schema() for key, shape in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        schema.update(self.extra)
        return schema


# What an IP network written as text looks like to an editor (the parsers' ipaddress is the
# judge): an IPv4 or IPv6 address with an optional /prefix length.
CIDR = AnyOf(
    (
        Text("an IPv4 CIDR", r"^\s*\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\s*$"),
        Text("an IPv6 CIDR", r"^\s*[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:/\d{1,3})?\s*$"),
    ),
    doc="a CIDR like 10.0.0.0/8 or 2001:db8::/32",
)
