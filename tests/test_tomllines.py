"""Key line numbers in TOML text: the scanner follows every construct experiment files use."""

from __future__ import annotations

from harness.experiment import tomllib  # tomllib, or tomli on Python 3.10
from harness.tomllines import KeyLines

TEXT = '''\
name = "x"   # comment with = and [brackets]
"quoted key" = 1
note = """
fake = "not a key"
[not.a.table]
"""
literal = \'\'\'c:\\path\'\'\'

[subject]
command = ["a",
  "b"]
setup = [
  ["s"],
  { command = ["t"], timeout = "5s" },
]
ready = { http = "/h", timeout = "1s" }
env.MODE = "fast"

[[workload.endpoints]]
path = "/a"

[[workload.endpoints]]
path = "/b"
[workload.endpoints.headers]
X = "1"

[metrics.latency_mean]
gate = true
'''


def test_the_fixture_is_valid_toml():
    assert tomllib.loads(TEXT)["workload"]["endpoints"][1]["headers"] == {"X": "1"}


def test_lines_of_keys_tables_and_items():
    lines = KeyLines(TEXT)
    expected = {
        ("name",): 1, ("quoted key",): 2, ("note",): 3, ("literal",): 7,
        ("subject",): 9, ("subject", "command", 1): 11, ("subject", "setup", 1): 14,
        ("subject", "setup", 1, "timeout"): 14, ("subject", "ready", "timeout"): 16,
        ("subject", "env", "MODE"): 17, ("workload",): 19, ("workload", "endpoints", 0): 19,
        ("workload", "endpoints", 1, "path"): 23, ("workload", "endpoints", 1, "headers", "X"): 25,
        ("metrics", "latency_mean", "gate"): 28,
    }
    assert {path: lines.line(path) for path in expected} == expected


def test_nothing_inside_strings_is_taken_for_a_key():
    lines = KeyLines(TEXT)
    assert ("fake",) not in lines.lines and ("not",) not in lines.lines


def test_an_unknown_path_falls_back_to_its_deepest_known_parent():
    lines = KeyLines(TEXT)
    assert lines.line(("subject", "ready", "log")) == 16
    assert lines.line(("nowhere",)) == 1
