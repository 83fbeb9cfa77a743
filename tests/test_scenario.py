"""The scenario grammar: golden files in, lines in execution order out; every bad line reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.scenario import CALLABLES, load_scenario, read_scenario


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def summary(lines):
    return [(line.time, line.callable, line.args, line.instances) for line in lines]


def test_lines_run_by_time_and_equal_times_keep_file_order(tmp_path):
    path = write(tmp_path, "s.scenario", """\
# comment line

@0:10 get /b
@0:05 get /a
@0:10 get /c   # trailing comment
@1:00:00 end
""")
    assert summary(load_scenario(path, instances=2)) == [
        (5.0, "get", ("/a",), None),
        (10.0, "get", ("/b",), None),
        (10.0, "get", ("/c",), None),
        (3600.0, "end", (), None),
    ]


def test_at_once_lines_follow_the_line_before_them_in_the_file(tmp_path):
    path = write(tmp_path, "s.scenario", """\
@! get /first
@0:10 post /later
@! wait_for /later status done
@0:05 get /earlier
""")
    assert [(line.time, line.args[0]) for line in load_scenario(path)] == [
        (None, "/first"), (5.0, "/earlier"), (10.0, "/later"), (None, "/later"),
    ]


def test_sources_name_file_and_line(tmp_path):
    path = write(tmp_path, "s.scenario", "\n\n@0:01 stop\n")
    (line,) = load_scenario(path)
    assert line.source == f"{path}:3"


@pytest.mark.parametrize(
    ("spec", "instances"),
    [("{1,2}", (1, 2)), ("{1-3}", (1, 2, 3)), ("{3, 1}", (1, 3)), ("{1-2,4}", (1, 2, 4)),
     ("{2-2}", (2,))],
)
def test_peer_sets(tmp_path, spec, instances):
    path = write(tmp_path, "s.scenario", f"@0:01 get /health {spec}\n")
    assert load_scenario(path, instances=4)[0].instances == instances


def test_variables_are_substituted_in_every_word(tmp_path):
    path = write(tmp_path, "s.scenario", """\
@$start post /downloads {"infohash": "${hash}"} {2}
@! wait_for /downloads downloads.0.status $state
@! get /cost$$
""")
    variables = {"start": "0:30", "hash": "ab cd", "state": "complete"}
    lines = load_scenario(path, variables, instances=2)
    assert summary(lines) == [
        (30.0, "post", ("/downloads", '{"infohash": "ab cd"}'), (2,)),
        (None, "wait_for", ("/downloads", "downloads.0.status", "complete"), None),
        (None, "get", ("/cost$",), None),
    ]


def test_quotes_group_words_and_json_stays_one_argument(tmp_path):
    path = write(tmp_path, "s.scenario",
                 """@0:01 wait_for /statistics 'state name' "a b"\n"""
                 """@0:02 post /x {"a": [1, 2], "b": {"c": "} #"}}\n""")
    lines = load_scenario(path)
    assert lines[0].args == ("/statistics", "state name", "a b")
    assert lines[1].args == ("/x", '{"a": [1, 2], "b": {"c": "} #"}}')
    assert lines[1].instances is None


def test_includes_are_relative_to_the_including_file_and_merge_by_time(tmp_path):
    write(tmp_path, "parts/common.scenario", "@0:02 get /from-include\n&include deeper.scenario\n")
    write(tmp_path, "parts/deeper.scenario", "@0:01 get /deepest\n")
    main = write(tmp_path, "main.scenario", """\
@0:02 get /before
&include parts/common.scenario
@0:02 get /after
@0:03 end
""")
    parsed = read_scenario(main)
    assert parsed.problems == ()
    assert [line.args[0] for line in parsed.lines if line.args] == [
        "/deepest", "/before", "/from-include", "/after",
    ]
    assert len(parsed.texts) == 3
    assert parsed.lines[0].source.endswith("deeper.scenario:1")


def test_include_cycles_are_reported_at_the_line_that_closes_them(tmp_path):
    write(tmp_path, "a.scenario", "@0:01 get /a\n&include b.scenario\n")
    write(tmp_path, "b.scenario", "@0:02 get /b\n&include a.scenario\n")
    problems = read_scenario(tmp_path / "a.scenario").problems
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'b.scenario'}:2: include cycle a.scenario -> "
                                  "b.scenario -> a.scenario (")


def test_a_missing_include_is_reported_at_the_include_line(tmp_path):
    path = write(tmp_path, "s.scenario", "@0:01 get /a\n&include nowhere.scenario\n")
    (problem,) = read_scenario(path).problems
    assert problem.startswith(f"{path}:2: cannot read scenario ")
    assert "relative to the file that names it" in problem


BAD_LINES = [
    ("0:10 get /x", "starts with a time", "add the time"),
    ("@0:70 get /x", "go up to 59", "@1:30"),
    ("@1:60:00 get /x", "go up to 59", "@1:30"),
    ("@10 get /x", "is not a time", "@0:30"),
    ("@0:01", "names no callable", "add one"),
    ("@0:01 gett /x", "unknown callable 'gett'", 'did you mean "get"?'),
    ("@0:01 get", "get takes 1 argument, got 0", "usage: get PATH"),
    ("@0:01 get /a /b", "get takes 1 argument, got 2", "usage: get PATH"),
    ("@0:01 wait_for /x f", "wait_for takes 3 to 4 arguments, got 2", "usage: wait_for PATH"),
    ("@0:01 stop now", "stop takes no arguments, got 1", "usage: stop"),
    ("@0:01 get health", "must start with '/'", "e.g. /health"),
    ('@0:01 post /x {"a": }', "is not JSON", "write one JSON value"),
    ('@0:01 post /x {"a": 1', "unclosed '{'", "on one line"),
    ("@0:01 get /x 'open", "unclosed quote", "close it"),
    ("@0:01 sleep 5x", "not a duration", '"200s"'),
    ("@0:01 wait_for /x f v 0s", "above zero", "e.g. 2m"),
    ("@0:01 get /x {4}", "instance 4 does not exist", "instances are 1 to 3"),
    ("@0:01 get /x {0}", "instance 0 does not exist", "instances are 1 to 3"),
    ("@0:01 get /x {3-1}", "runs backwards", "write 1-3"),
    ("@0:01 get /x {1-}", "not a peer set", "{1-3}"),
    ("@0:01 workload {1}", "does not take a peer set", "usage: workload"),
    ("@0:01 get /x/$nope", "unknown variable $nope", 'did you mean "$node"?'),
    ("&inclde other", "unknown directive '&inclde'", "&include FILE"),
    ("&include a b", "takes one file name", "usage: &include FILE"),
]


@pytest.mark.parametrize(("text", "message", "fix"), BAD_LINES)
def test_malformed_lines_name_file_line_and_fix(tmp_path, text, message, fix):
    path = write(tmp_path, "bad.scenario", f"# header\n\n{text}\n")
    (problem,) = read_scenario(path, {"node": "1"}, instances=3).problems
    assert problem.startswith(f"{path}:3: ")
    assert message in problem
    fix_part = re.search(r"\((.*)\)$", problem)
    assert fix_part and fix in fix_part.group(1)


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    path = write(tmp_path, "bad.scenario", "\n".join(text for text, _, _ in BAD_LINES) + "\n")
    problems = read_scenario(path, {"node": "1"}, instances=3).problems
    assert [int(p.split(":")[1]) for p in problems] == list(range(1, len(BAD_LINES) + 1))
    with pytest.raises(ConfigError) as caught:
        load_scenario(path, {"node": "1"}, instances=3)
    assert str(caught.value).count(f"{path}:") == len(BAD_LINES)


def test_lines_after_end_are_errors_because_they_never_run(tmp_path):
    path = write(tmp_path, "s.scenario", "@0:10 end\n@0:20 get /late\n@0:05 get /early\n")
    (problem,) = read_scenario(path).problems
    assert problem.startswith(f"{path}:2: this line runs after `end` at {path}:1")
    assert "(move it before the end, or remove it)" in problem


def test_without_instances_any_positive_peer_is_accepted(tmp_path):
    path = write(tmp_path, "s.scenario", "@0:01 stop {7}\n")
    assert load_scenario(path)[0].instances == (7,)


def test_empty_json_object_is_a_body_not_a_peer_set(tmp_path):
    path = write(tmp_path, "s.scenario", "@0:01 post /x {}\n")
    assert load_scenario(path)[0].args == ("/x", "{}")


def test_every_callable_has_usage_and_summary():
    for name, action in CALLABLES.items():
        assert action.usage.split()[0] == name
        assert action.summary
