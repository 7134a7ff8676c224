"""Durations and sizes as operators write them in config files ("250ms", "256KiB").

One parser for the whole project, so every setting accepts the same spellings and
every error message reads the same way.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = [
    "DURATION_PATTERN",
    "SIZE_PATTERN",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]

_DURATION_UNITS: dict[str, Fraction] = {
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
    "d": Fraction(86400),
}

# Keys are lower-case: units are matched case-insensitively ("kib", "KiB", "KIB").
_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}

_NUMBER_WITH_UNIT = re.compile(r"(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>\S*)")
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"


def _text_pattern(units: list[str], *, any_case: bool) -> str:
    """What the parser below reads, as a JSON Schema (ECMA-262) pattern: a number without a
    minus, then one of ``units`` or none, spaces around. Built from the same unit tables."""

    def spelled(unit: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if any_case else c for c in unit)

    alternatives = "|".join(spelled(u) for u in sorted(units, key=len, reverse=True))
    return rf"^\s*\+?(?:{_NUMBER})\s*(?:{alternatives})?\s*$"


#: A duration or size written as text ('250ms', '1MiB'); a bare number is one too (seconds, bytes).
DURATION_PATTERN = _text_pattern(list(_DURATION_UNITS), any_case=False)
SIZE_PATTERN = _text_pattern(list(_SIZE_UNITS), any_case=True)


def _split(text: str, what: str, example: str) -> tuple[Fraction, str]:
    """Split '1.5s' into (3/2, 's'); exact arithmetic so '0.1s' stays exactly 100ms."""
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty {what}; write a number with a unit, e.g. {example}")
    match = _NUMBER_WITH_UNIT.fullmatch(stripped)
    if match is None:
        raise ValueError(f"invalid {what} {text!r}; write a number with a unit, e.g. {example}")
    if match["sign"] == "-":
        raise ValueError(f"invalid {what} {text!r}: must not be negative")
    return Fraction(match["number"]), match["unit"]


def _check_number(value: int | float, what: str) -> None:
    if isinstance(value, bool):
        raise ValueError(f"invalid {what} {value!r}: expected a number or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"invalid {what} {value!r}: must be finite")
    if value < 0:
        raise ValueError(f"invalid {what} {value!r}: must not be negative")


def parse_duration(value: str | int | float) -> float:
    """Seconds from '250ms', '5s', '2m', '1h', '1d', '1.5s' or a bare number of seconds."""
    if isinstance(value, int | float):
        _check_number(value, "duration")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected a string such as '5s'")
    number, unit = _split(value, "duration", "'5s' or '250ms'")
    if unit == "":
        return float(number)
    factor = _DURATION_UNITS.get(unit)
    if factor is None:
        known = ", ".join(_DURATION_UNITS)
        raise ValueError(f"invalid duration {value!r}: unknown unit {unit!r}; use one of {known}")
    return float(number * factor)


def parse_size(value: str | int | float) -> int:
    """Bytes from '512', '256KiB', '1MiB', '1GiB', '10MB' (decimal) or a bare number of bytes."""
    if isinstance(value, int | float):
        _check_number(value, "size")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"invalid size {value!r}: must be a whole number of bytes")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid size {value!r}: expected a string such as '256KiB'")
    number, unit = _split(value, "size", "'256KiB' or '10MB'")
    factor = _SIZE_UNITS.get(unit.lower()) if unit else 1
    if factor is None:
        known = "B, KiB, MiB, GiB, TiB, KB, MB, GB, TB"
        raise ValueError(f"invalid size {value!r}: unknown unit {unit!r}; use one of {known}")
    size = number * factor
    if size.denominator != 1:
        raise ValueError(f"invalid size {value!r}: must be a whole number of bytes")
    return int(size)


def _trim(number: float) -> str:
    """'1.5' for 1.5, '2' for 2.0: the shortest text that parses back to the same value."""
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def format_duration(seconds: float) -> str:
    """Shortest readable spelling that parse_duration reads back ('250ms', '1.5s', '5m', '2h')."""
    if seconds == 0:
        return "0s"
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    if seconds >= 1:
        return f"{_trim(seconds)}s"
    return f"{_trim(seconds * 1000)}ms"


def format_size(size: int) -> str:
    """Exact spelling that parse_size reads back: the largest unit that divides the size."""
    if size == 0:
        return "0B"
    for unit, factor in (
        ("TiB", 1024**4),
        ("GiB", 1024**3),
        ("MiB", 1024**2),
        ("KiB", 1024),
        ("TB", 1000**4),
        ("GB", 1000**3),
        ("MB", 1000**2),
        ("KB", 1000),
    ):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
