"""Fuzzing (hypothesis, bounded): the parsers, the results loader and the CLI arguments.

Whatever they are given, nothing but the harness' own error type (HarnessError) escapes; the CLI
always ends with an exit code. Examples are few and bounded so CI stays fast.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import HarnessError
from harness.experiment import load_experiment, validate_experiment
from harness.results import load_results
from harness.scenario import read_scenario

BOUNDED = settings(max_examples=150, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

# TOML built from the experiment's own vocabulary, so fuzzing reaches past the syntax check
TABLES = ["", "[subject]", "[workload]", "[[workload.endpoints]]", "[variables]", "[probes]",
          "[rounds]", "[subject.ready]", "[[subject.setup]]", "[metrics.latency_mean]",
          "[instructions]", "[subject.stop]"]
KEYS = ["command", "rate", "rates", "requests", "duration", "path", "name", "instances", "ready",
        "stop", "http", "then", "timeout", "warmup", "env", "setup", "gate", "min_change",
        "scenario", "count", "max_lag", "method", "body", "headers", "log", "db", "x"]
SCALARS = st.one_of(
    st.integers(-3, 70).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["true", "false", "[]", "{}", '["{python}", "-m", "app", "{port}"]',
                     '"5/s"', '"0/s"', '"1200ms"', '"0.02m"', '"/health"', '"health"',
                     '"{port}"', '"{nope}"', '"PUT /shutdown"', '"SIGINT"', '"SIGKILL"',
                     '{ http = "/x" }', '{ http = "GET /x", then = "INT" }', '["1/s", "1/s"]',
                     '"10%"', '"-1s"', '"nan"']),
    st.text(string.printable, max_size=12).map(json.dumps),
)
LINES = st.one_of(
    st.sampled_from(TABLES),
    st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(KEYS), SCALARS),
    st.text(string.printable, max_size=30),
)
SCENARIO_LINES = st.one_of(
    st.builds(lambda t, c, a: f"{t} {c} {a}",
              st.sampled_from(["@0:00", "@!", "@1:00:00", "@0:61", "@x", "@$idle", "@0:01.5"]),
              st.sampled_from(["get", "post", "wait_for", "sleep", "stop", "end", "workload",
                               "nope", "&include"]),
              st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=25)),
    st.text(string.printable, max_size=40),
)


@BOUNDED
@given(st.lists(LINES, max_size=25))
def test_the_experiment_parser_only_raises_config_errors(tmp_path, lines):
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    problems = validate_experiment(path)
    assert all(isinstance(p, str) for p in problems)
    try:
        load_experiment(path)
    except HarnessError:
        pass


@BOUNDED
@given(st.lists(SCENARIO_LINES, max_size=15), st.integers(1, 4))
def test_the_scenario_parser_collects_problems_and_raises_nothing(tmp_path, lines, instances):
    path = tmp_path / "fuzz.scenario"
    path.write_text("\n".join(lines), encoding="utf-8")
    parsed = read_scenario(path, {"idle": "0:05"}, instances=instances)
    assert all(isinstance(p, str) for p in parsed.problems)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(
                                   ["format_version", "label", "experiment", "environment",
                                    "rounds", "created_at", "name", "path", "sha256", "index",
                                    "side", "instance", "step", "started_at", "duration",
                                    "requests", "summary", "valid", "stop", "errors", "x"]),
                                   children, max_size=6)),
    max_leaves=25)


@BOUNDED
@given(st.one_of(JSON, st.fixed_dictionaries({"format_version": st.sampled_from([1, 2]),
                                              "rounds": st.lists(JSON, max_size=3)},
                                             optional={"label": JSON, "experiment": JSON})))
def test_the_results_loader_only_raises_its_format_error(tmp_path, data):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
    try:
        load_results(path)
    except HarnessError:
        pass


WORDS = ["run", "compare", "perf", "validate", "baseline", "fetch", "coverage", "gate", "publish",
         "github", "--out", "--rounds", "--set", "--baseline", "--label", "--quiet", "0", "-1",
         "x=1", "=", "a.toml", "b.json", "--debug", "--budget", "5q", "--seed", "--nope",
         "--current", "--job", "--experiment", "--repo", "--sha", "o/r", "--tolerance", "nan"]


@BOUNDED
@given(st.lists(st.sampled_from(WORDS), max_size=8))
def test_cli_arguments_end_in_an_exit_code(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)  # no experiment, no git: nothing can start running
    for name in ("JENKINS_URL", "GITHUB_TOKEN", "JENKINS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors and --help
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 1, 2), err
    assert "internal error" not in err


def test_the_cli_fuzzing_would_see_an_internal_error(monkeypatch, capsys):
    """The property above can fail: an escaping exception is reported as an internal error."""
    import harness.experiment

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.experiment, "validate_experiment", broken)
    assert main(["validate", "a.toml"]) == 1
    assert "internal error" in capsys.readouterr().err


@pytest.fixture
def tmp_path(tmp_path_factory) -> Path:  # one directory per test, reused across examples
    return tmp_path_factory.mktemp("fuzz")
