"""Quantities with units as written in experiment files: durations, rates, percentages, sizes.

Every parser accepts the TOML value as given (a string with a unit, or a bare number) and returns
a plain float or int in base units: seconds, requests per second, a fraction (0.10 for 10%), bytes.
A value that cannot be read raises ConfigError whose message says what was wrong and how to write
it; callers prefix the file, line and key.
"""

from __future__ import annotations

import math
import re

from harness.errors import ConfigError

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"

# largest first: a duration's parts must appear in this order, each at most once ("1h30m")
_DURATION_UNITS: dict[str, float] = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
_DURATION_PART = re.compile(rf"({_NUMBER})\s*(h|min|ms|us|µs|m|s)")
_DURATION_HINT = 'write a number and a unit: "200s", "5m", "100ms", "1h30m", or a number of seconds'

_RATE_UNITS: dict[str, float] = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0,
}
_RATE = re.compile(rf"({_NUMBER})\s*/\s*([a-z]+)")
_RATE_HINT = 'write requests per time unit: "5/s", "300/m", "1000/h", or a number per second'

_SIZE_UNITS: dict[str, int] = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_SIZE = re.compile(rf"({_NUMBER})\s*([a-z]+)")
_SIZE_HINT = 'write a size with a unit: "512B", "10KB", "4MiB", "1GB", or a number of bytes'


def _number(value: object, what: str, hint: str) -> float | None:
    """A bare number (TOML int/float, or a string holding one), else None; refuses booleans."""
    if isinstance(value, bool):
        raise ConfigError(f"{value!r} is not a {what} ({hint})")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and re.fullmatch(rf"[+-]?{_NUMBER}", value.strip()):
        number = float(value.strip())
    else:
        return None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{value!r} is not a {what}: it must be zero or more ({hint})")
    return number


def _text(value: object, what: str, hint: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{value!r} is not a {what} ({hint})")
    return value.strip()


def parse_duration(value: object) -> float:
    """Seconds from "200s", "5m", "100ms", "1h30m", "1.5s" or a bare number of seconds."""
    number = _number(value, "duration", _DURATION_HINT)
    if number is not None:
        return number
    text = _text(value, "duration", _DURATION_HINT)
    total, pos = 0.0, 0
    seen: list[str] = []
    order = list(_DURATION_UNITS)
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise ConfigError(f"{value!r} is not a duration ({_DURATION_HINT})")
        unit = {"µs": "us", "min": "m"}.get(match.group(2), match.group(2))
        if seen and order.index(unit) <= order.index(seen[-1]):
            raise ConfigError(
                f"{value!r} is not a duration: units must go from largest to smallest, each once "
                f'(e.g. "1h30m")'
            )
        seen.append(unit)
        total += float(match.group(1)) * _DURATION_UNITS[unit]
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    if not seen:
        raise ConfigError(f"{value!r} is not a duration ({_DURATION_HINT})")
    return total


def parse_rate(value: object) -> float:
    """Requests per second from "5/s", "300/m", "1000/h" or a bare number per second; above 0."""
    number = _number(value, "rate", _RATE_HINT)
    if number is None:
        text = _text(value, "rate", _RATE_HINT).lower()
        match = _RATE.fullmatch(text)
        if not match or match.group(2) not in _RATE_UNITS:
            raise ConfigError(f"{value!r} is not a rate ({_RATE_HINT})")
        number = float(match.group(1)) / _RATE_UNITS[match.group(2)]
    if number <= 0:
        raise ConfigError(f"{value!r} is not a usable rate: it must be above zero ({_RATE_HINT})")
    return number


def parse_fraction(value: object) -> float:
    """A fraction from "10%" (0.10) or a bare fraction between 0 and 1 (0.1)."""
    hint = 'write a percentage such as "10%", or a fraction between 0 and 1 such as 0.1'
    number = _number(value, "percentage", hint)
    if number is not None:
        if number > 1:
            raise ConfigError(
                f'{value!r} is ambiguous as a fraction (write "{value}%" for percent, or a '
                "fraction between 0 and 1)"
            )
        return number
    text = _text(value, "percentage", hint)
    if not text.endswith("%"):
        raise ConfigError(f"{value!r} is not a percentage ({hint})")
    percent = _number(text[:-1].strip(), "percentage", hint)
    if percent is None:
        raise ConfigError(f"{value!r} is not a percentage ({hint})")
    return percent / 100.0


def parse_size(value: object) -> int:
    """Bytes from "512B", "10KB" (1000), "4MiB" (1024**2) or a bare number of bytes."""
    number = _number(value, "size", _SIZE_HINT)
    if number is None:
        text = _text(value, "size", _SIZE_HINT).lower()
        match = _SIZE.fullmatch(text)
        if not match or match.group(2) not in _SIZE_UNITS:
            raise ConfigError(f"{value!r} is not a size ({_SIZE_HINT})")
        number = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    return int(round(number))


def format_duration(seconds: float) -> str:
    """A short human form that parse_duration reads back: "1h30m", "45s", "250ms"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = ((hours, "h"), (minutes, "m"), (secs, "s"))
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount)
