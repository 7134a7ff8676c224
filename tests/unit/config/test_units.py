"""Durations and sizes as written in config files."""

from __future__ import annotations

import math

import pytest

from hookwall.config.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("0.1s", 0.1),
        ("0s", 0.0),
        ("  2s ", 2.0),
        ("2 s", 2.0),
        ("10", 10.0),
        ("+3s", 3.0),
        (5, 5.0),
        (0.75, 0.75),
        (0, 0.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-1s", "must not be negative"),
        (-1, "must not be negative"),
        (-0.5, "must not be negative"),
        ("5x", "unknown unit 'x'; use one of ms, s, m, h, d"),
        ("5 minutes", "unknown unit 'minutes'"),
        ("5S", "unknown unit 'S'"),
        ("s", "invalid duration 's'"),
        ("1h30m", "unknown unit 'h30m'"),
        ("abc", "invalid duration 'abc'"),
        ("1e3s", "unknown unit 'e3s'"),
        (math.inf, "must be finite"),
        (math.nan, "must be finite"),
        ("inf", "invalid duration"),
        (True, "expected a number or a string"),
    ],
)
def test_parse_duration_rejects(value: str | int | float, message: str) -> None:
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(value)
    assert message in str(caught.value)


def test_parse_duration_rejects_other_types() -> None:
    with pytest.raises(ValueError, match="expected a string such as '5s'"):
        parse_duration(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512", 512),
        ("512B", 512),
        ("256KiB", 256 * 1024),
        ("1MiB", 1024**2),
        ("1GiB", 1024**3),
        ("2TiB", 2 * 1024**4),
        ("1KB", 1000),
        ("10MB", 10_000_000),
        ("1GB", 10**9),
        ("1.5MiB", 1572864),
        ("1.5KB", 1500),
        ("64 kib", 65536),
        ("0", 0),
        (4096, 4096),
        (2048.0, 2048),
    ],
)
def test_parse_size(value: str | int | float, size: int) -> None:
    assert parse_size(value) == size
    assert isinstance(parse_size(value), int)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty size"),
        ("-1KiB", "must not be negative"),
        (-5, "must not be negative"),
        ("10XB", "unknown unit 'XB'"),
        ("0.5B", "must be a whole number of bytes"),
        ("1.0001KB", "must be a whole number of bytes"),
        (1.5, "must be a whole number of bytes"),
        ("KiB", "invalid size 'KiB'"),
        (False, "expected a number or a string"),
    ],
)
def test_parse_size_rejects(value: str | int | float, message: str) -> None:
    with pytest.raises(ValueError, match="size") as caught:
        parse_size(value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (0.0005, "0.5ms"),
        (1.5, "1.5s"),
        (2, "2s"),
        (90, "90s"),
        (120, "2m"),
        (300, "5m"),
        (3600, "1h"),
        (5400, "90m"),
        (86400, "1d"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (512, "512B"),
        (1024, "1KiB"),
        (1536, "1536B"),
        (262144, "256KiB"),
        (1024**2, "1MiB"),
        (3 * 1024**3, "3GiB"),
        (1024**4, "1TiB"),
        (1000, "1KB"),
        (10_000_000, "10MB"),
        (1023, "1023B"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size
