"""Units as written in experiment files: what each form means, and the messages for bad ones."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.units import format_duration, parse_duration, parse_fraction, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200s", 200.0), ("5m", 300.0), ("100ms", 0.1), ("1h30m", 5400.0), ("1h 30m 5s", 5405.0),
        ("1.5s", 1.5), (".5s", 0.5), ("250us", 0.00025), ("2min", 120.0), ("0s", 0.0),
        (10, 10.0), (2.5, 2.5), ("7", 7.0), (" 3s ", 3.0),
    ],
)
def test_duration_forms(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("5x", "not a duration"), ("s", "not a duration"), ("", "not a duration"),
        ("30m1h", "largest to smallest"), ("1m1m", "largest to smallest"),
        ("-5s", "not a duration"), (-5, "zero or more"), (True, "not a duration"),
        ([1], "not a duration"),
    ],
)
def test_duration_errors_say_how_to_write_one(text, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_duration(text)
    assert fragment in str(caught.value)
    assert '"1h30m"' in str(caught.value)  # every message says how to write one


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("5/s", 5.0), ("300/m", 5.0), ("300/min", 5.0), ("3600/h", 1.0), ("2.5 / s", 2.5),
     (7, 7.0), ("0.5", 0.5), ("10/second", 10.0)],
)
def test_rate_forms(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("5/x", "not a rate"), ("fast", "not a rate"), ("0/s", "above zero"), (0, "above zero"),
     ("5/s/s", "not a rate"), (False, "not a rate")],
)
def test_rate_errors(text, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_rate(text)
    assert fragment in str(caught.value)
    assert '"5/s"' in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fraction"),
    [("10%", 0.10), ("1%", 0.01), ("0.5%", 0.005), ("150%", 1.5), (0.1, 0.1), (0, 0.0), (1, 1.0)],
)
def test_fraction_forms(text, fraction):
    assert parse_fraction(text) == pytest.approx(fraction)


def test_a_bare_number_above_one_is_ambiguous_and_the_message_offers_both_readings():
    with pytest.raises(ConfigError) as caught:
        parse_fraction(10)
    assert '"10%"' in str(caught.value)
    assert "between 0 and 1" in str(caught.value)


@pytest.mark.parametrize("text", ["ten", "10", "%", "-5%", "10 percent"])
def test_fraction_errors(text):
    with pytest.raises(ConfigError):
        parse_fraction(text)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("512B", 512), ("10KB", 10_000), ("4MiB", 4 * 1024**2), ("1.5kb", 1500), (2048, 2048)],
)
def test_size_forms(text, nbytes):
    assert parse_size(text) == nbytes


def test_size_errors_name_the_units():
    with pytest.raises(ConfigError) as caught:
        parse_size("10 parsecs")
    assert "MiB" in str(caught.value)


@pytest.mark.parametrize("seconds", [0.1, 1.5, 45, 60, 90, 3600, 5405])
def test_formatted_durations_read_back(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
