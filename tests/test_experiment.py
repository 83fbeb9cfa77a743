"""Experiment definitions: the shipped ones load, defaults fill in, every mistake is reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.experiment import (
    RUNTIME_PLACEHOLDERS,
    SCHEMA,
    Endpoint,
    Probes,
    Readiness,
    expand,
    load_experiment,
    validate_experiment,
)
from harness.scenario import CALLABLES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "experiments").glob("*.toml"))

MINIMAL = """\
[subject]
command = ["{python}", "-m", "app", "--port", "{port}"]

[workload]
rate = "5/s"
requests = 10

[[workload.endpoints]]
path = "/health"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def only_problem(path: Path, overrides=None) -> str:
    problems = validate_experiment(path, overrides)
    assert len(problems) == 1, problems
    return problems[0]


def assert_problem(problem: str, path: Path, line: int, message: str, fix: str) -> None:
    assert problem.startswith(f"{path}:{line}: "), problem
    assert message in problem
    fix_part = re.search(r"\((.*)\)$", problem)
    assert fix_part and fix in fix_part.group(1), problem


# --- shipped experiments ----------------------------------------------------------------------


def test_the_four_experiments_are_shipped():
    assert {p.stem for p in SHIPPED} >= {"api-stress", "api-sweep", "idle", "download"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_experiment_validates(path):
    assert validate_experiment(path) == []
    experiment = load_experiment(path)
    assert experiment.name == path.stem
    assert experiment.description


def test_api_stress_is_the_thesis_test_at_five_per_second():
    experiment = load_experiment(ROOT / "experiments" / "api-stress.toml")
    assert experiment.workload is not None
    assert experiment.workload.rates == (5.0,)
    assert experiment.workload.requests == 200
    assert [e.path for e in experiment.workload.endpoints] == ["/channels"]
    assert experiment.variables["db"] == "worker"
    assert "--db" in experiment.subject.command
    assert experiment.subject.command[experiment.subject.command.index("--db") + 1] == "worker"
    assert experiment.metrics["latency_mean"].gate is True
    assert experiment.metrics["latency_mean"].min_change == pytest.approx(0.10)


def test_api_sweep_has_one_step_per_rate_of_table_6_7():
    experiment = load_experiment(ROOT / "experiments" / "api-sweep.toml")
    assert experiment.workload is not None
    assert experiment.workload.rates == (1.0, 2.0, 5.0, 10.0, 15.0, 20.0)


def test_idle_seeds_two_peers_and_lets_the_third_sync_from_the_others():
    experiment = load_experiment(ROOT / "experiments" / "idle.toml")
    assert experiment.workload is None
    assert experiment.subject.instances == 3
    (setup,) = experiment.subject.setup
    assert setup.instances == (1, 2)
    assert "{peers}" in experiment.subject.command
    assert experiment.scenario[-1].callable == "end"
    assert experiment.scenario[-1].time == 60.0


def test_idle_time_is_a_variable_of_the_scenario():
    experiment = load_experiment(ROOT / "experiments" / "idle.toml", {"idle": "5:00"})
    assert experiment.scenario[-1].time == 300.0


def test_download_posts_waits_and_stops():
    experiment = load_experiment(ROOT / "experiments" / "download.toml")
    assert [line.callable for line in experiment.scenario] == [
        "get", "post", "wait_for", "get", "stop",
    ]
    post = experiment.scenario[1]
    assert post.instances == (2,)
    assert experiment.variables["infohash"] in post.args[1]


def test_validate_command_prints_valid_and_exits_0(capsys):
    assert main(["validate", str(ROOT / "experiments" / "api-stress.toml")]) == 0
    assert "valid" in capsys.readouterr().out


# --- defaults, overrides, placeholders --------------------------------------------------------


def test_a_minimal_experiment_gets_the_documented_defaults(tmp_path):
    experiment = load_experiment(write(tmp_path, "tiny.toml", MINIMAL))
    assert experiment.name == "tiny"
    assert experiment.description == ""
    assert experiment.subject.instances == 1
    assert experiment.subject.ready == Readiness()
    assert experiment.probes == Probes()
    assert experiment.workload is not None
    assert experiment.workload.endpoints == (Endpoint(path="/health", name="/health"),)
    assert experiment.workload.duration is None
    assert experiment.scenario == ()


def test_units_are_read_everywhere(tmp_path):
    path = write(tmp_path, "u.toml", MINIMAL.replace('rate = "5/s"', 'rate = "300/m"') + """
[probes]
resource_interval = "250ms"
[rounds]
perf_budget = "1h30m"
[metrics.latency_mean]
min_change = "15%"
""")
    experiment = load_experiment(path)
    assert experiment.workload.rates == (5.0,)
    assert experiment.probes.resource_interval == pytest.approx(0.25)
    assert experiment.rounds.perf_budget == 5400.0
    assert experiment.metrics["latency_mean"].min_change == pytest.approx(0.15)
    assert experiment.metrics["latency_mean"].gate is None


def test_duration_instead_of_requests(tmp_path):
    path = write(tmp_path, "d.toml", MINIMAL.replace("requests = 10", 'duration = "2m"'))
    workload = load_experiment(path).workload
    assert (workload.requests, workload.duration) == (None, 120.0)


def test_variables_are_filled_in_at_load_and_runtime_placeholders_kept(tmp_path):
    path = write(tmp_path, "v.toml", """\
[variables]
db = "worker"
size = 20

[subject]
command = ["{python}", "serve", "--db={db}", "--size", "{size}", "--peers", "{peers}"]
env = { MODE = "{db}-{instance}" }
cwd = "sub/{db}"

[workload]
rate = 1
requests = 1

[[workload.endpoints]]
path = "/items?size={size}"
body = '{"a": {"b": 1}}'
""")
    experiment = load_experiment(path, {"db": "blocking"})
    assert experiment.variables == {"db": "blocking", "size": "20"}
    assert experiment.subject.command == (
        "{python}", "serve", "--db=blocking", "--size", "20", "--peers", "{peers}",
    )
    assert experiment.subject.env == {"MODE": "blocking-{instance}"}
    assert experiment.subject.cwd == "sub/blocking"
    endpoint = experiment.workload.endpoints[0]
    assert endpoint.path == "/items?size=20"
    assert endpoint.body == '{"a": {"b": 1}}'


def test_expand_fills_runtime_placeholders_and_keeps_other_braces():
    values = {"python": "/usr/bin/python3", "port": "8080", "peers": ""}
    assert expand(("{python}", "--port={port}", '{"json": 1}', "{peers}"), values) == (
        "/usr/bin/python3", "--port=8080", '{"json": 1}', "",
    )


def test_expand_names_a_placeholder_without_value():
    with pytest.raises(ConfigError) as caught:
        expand(("--dir", "{state_dir}"), {"port": "1"})
    assert "{state_dir}" in str(caught.value) and "{port}" in str(caught.value)


def test_a_table_body_becomes_json_with_its_content_type(tmp_path):
    path = write(tmp_path, "b.toml", MINIMAL.replace(
        'path = "/health"', 'path = "/downloads"\nmethod = "post"\nbody = { infohash = "ab" }'))
    endpoint = load_experiment(path).workload.endpoints[0]
    assert endpoint.method == "POST"
    assert endpoint.body == '{"infohash": "ab"}'
    assert endpoint.headers == {"Content-Type": "application/json"}


def test_setup_accepts_plain_argument_lists_and_tables(tmp_path):
    path = write(tmp_path, "s.toml", MINIMAL.replace("[workload]", """\
instances = 2
setup = [["{python}", "seed.py", "{state_dir}"], { command = ["x"], instances = 2 }]

[workload]"""))
    setup = load_experiment(path).subject.setup
    assert setup[0].command == ("{python}", "seed.py", "{state_dir}")
    assert setup[0].instances is None
    assert setup[1].instances == (2,)
    assert setup[1].timeout == 600.0


def test_log_readiness_replaces_the_http_default(tmp_path):
    path = write(tmp_path, "r.toml", MINIMAL.replace(
        "[workload]", 'ready = { log = "ready on .*:\\\\d+", timeout = "2m" }\n\n[workload]'))
    ready = load_experiment(path).subject.ready
    assert (ready.http, ready.log, ready.timeout) == (None, r"ready on .*:\d+", 120.0)


def test_hash_covers_the_toml_and_the_scenario(tmp_path):
    toml = write(tmp_path, "h.toml", 'scenario = "h.scenario"\n' + MINIMAL)
    scenario = write(tmp_path, "h.scenario", "@0:00 workload\n")
    first = load_experiment(toml).sha256
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert load_experiment(toml).sha256 == first
    scenario.write_text("@0:01 workload\n")
    assert load_experiment(toml).sha256 != first


# --- problems: file, line, message, fix ------------------------------------------------------


def test_unknown_top_level_key_suggests_the_right_one(tmp_path):
    path = write(tmp_path, "x.toml", MINIMAL + '\n[worklaod]\nrate = "1/s"\n')
    assert_problem(only_problem(path), path, 11, 'unknown key "worklaod" at the top level',
                   'did you mean "workload"?')


@pytest.mark.parametrize(
    ("replace", "by", "line", "message", "fix"),
    [
        ('rate = "5/s"', 'rat = "5/s"', 5, 'unknown key "rat" in [workload]',
         'did you mean "rate"?'),
        ('rate = "5/s"', 'rate = "5/x"', 5, "workload.rate: '5/x' is not a rate", '"5/s"'),
        ('rate = "5/s"', 'rate = "0/s"', 5, "above zero", '"5/s"'),
        ('rate = "5/s"', 'rates = ["1/s", "0/s"]', 5, "above zero", '"5/s"'),
        ('rate = "5/s"', 'rates = ["1/s", "1/s"]', 5, "appears twice", "remove one"),
        ('rate = "5/s"', 'rate = "5/s"\nrates = ["1/s"]', 6, "give rate or rates, not both",
         "for a sweep"),
        ('rate = "5/s"', "", 4, "no rate or rates", 'rate = "5/s"'),
        ("requests = 10", 'requests = 10\nduration = "1m"', 7, "give requests or duration",
         "for a time per step"),
        ("requests = 10", "requests = 0", 6, "workload.requests: 0 is out of range", "1 or more"),
        ("requests = 10", 'requests = 10\nwarmup = "5x"', 7, "workload.warmup: '5x' is not a "
         "duration", '"200s"'),
        ("requests = 10", 'requests = 10\narrival = "poison"', 7, "not one of constant, poisson",
         'did you mean "poisson"?'),
        ("requests = 10", "requests = 10\ninstance = 2", 7, "instance 2 does not exist",
         "subject.instances is 1"),
        ("requests = 10", 'requests = 10\nmax_error_rate = 5', 7, "ambiguous", '"5%"'),
        ('path = "/health"', 'path = "health"', 9, "workload.endpoints[1].path", '"/health"'),
        ('path = "/health"', 'path = "/h"\nweight = 0', 10, "weight must be a number above zero",
         "e.g. 1"),
        ('path = "/health"', 'path = "/h"\nmethod = "FETCH"', 10, "not an HTTP method", "GET"),
        ('path = "/health"', 'name = "x"', 8, "no path", 'path = "/health"'),
        ('path = "/health"', 'path = "/{port}"', 9, "{port} is only known when a command starts",
         "subject.command"),
        ('"{port}"]', '"{prot}"]', 2, "unknown placeholder {prot}", 'did you mean "{port}"?'),
        ('"{port}"]', '"{port}"]\ninstances = 0', 3, "subject.instances: 0 is out of range",
         "1 to 64"),
        ('"{port}"]', '"{port}"]\nready = { http = "/h", log = "up" }', 3,
         "give http or log, not both", "remove one"),
        ('"{port}"]', '"{port}"]\nready = { log = "up(" }', 3, "not a regular expression",
         "escape it"),
        ('"{port}"]', '"{port}"]\nsetup = [{ command = ["s"], instances = [3] }]', 3,
         "instance 3 does not exist", "subject.instances is 1"),
        ('"{port}"]', '"{port}"]\nsetup = [{ instances = [1] }]', 3, "no command",
         'command = ["{python}"'),
        ('"{port}"]', '"{port}"]\nenv = { N = 1 }', 3, "N = 1 is not a string", 'N = "1"'),
        ('command = ["{python}", "-m", "app", "--port", "{port}"]', 'command = "app"', 2,
         "expected a non-empty array of strings", "write e.g."),
    ],
)
def test_each_mistake_is_reported_with_its_line_and_fix(tmp_path, replace, by, line, message, fix):
    assert replace in MINIMAL
    path = write(tmp_path, "bad.toml", MINIMAL.replace(replace, by))
    assert_problem(only_problem(path), path, line, message, fix)


def test_unknown_key_in_the_second_endpoint_points_at_its_line(tmp_path):
    second = '\n[[workload.endpoints]]\npath = "/b"\nwieght = 2\n'
    path = write(tmp_path, "e.toml", MINIMAL + second)
    assert_problem(only_problem(path), path, 13, 'unknown key "wieght" in '
                   "[workload.endpoints[2]]", 'did you mean "weight"?')


def test_keys_inside_multi_line_arrays_point_at_their_own_line(tmp_path):
    path = write(tmp_path, "m.toml", MINIMAL.replace("[workload]", """\
setup = [
  ["ok"],
  { command = ["x"], timeout = "never" },
]

[workload]"""))
    assert_problem(only_problem(path), path, 6, "subject.setup[2].timeout", '"200s"')


def test_endpoint_names_must_differ(tmp_path):
    path = write(tmp_path, "n.toml", MINIMAL + '\n[[workload.endpoints]]\npath = "/health"\n')
    assert_problem(only_problem(path), path, 11, 'name "/health" is used twice', "its own name")


def test_unknown_metric_suggests_the_declared_one(tmp_path):
    path = write(tmp_path, "m.toml", MINIMAL + "\n[metrics.latency_mena]\ngate = true\n")
    assert_problem(only_problem(path), path, 11, 'unknown metric "latency_mena"',
                   'did you mean "latency_mean"?')


def test_bad_metric_policy_value(tmp_path):
    path = write(tmp_path, "m.toml", MINIMAL + '\n[metrics.latency_mean]\nmin_change = "ten"\n')
    assert_problem(only_problem(path), path, 12, "metrics.latency_mean.min_change", '"10%"')


def test_unknown_set_key_is_an_error_with_a_suggestion(tmp_path):
    path = write(tmp_path, "s.toml", '[variables]\ndb = "worker"\n\n' + MINIMAL)
    assert_problem(only_problem(path, {"dbb": "blocking"}), path, 1, "--set dbb=blocking: no such "
                   "variable", 'did you mean "db"?')


def test_a_variable_may_not_shadow_a_runtime_placeholder(tmp_path):
    path = write(tmp_path, "s.toml", '[variables]\nport = "1"\n\n' + MINIMAL)
    assert_problem(only_problem(path), path, 2, "{port} is filled in by the runner", "rename it")
    assert "port" in RUNTIME_PLACEHOLDERS


def test_toml_syntax_errors_give_the_line(tmp_path):
    path = write(tmp_path, "s.toml", MINIMAL.replace("requests = 10", "requests = = 10"))
    assert_problem(only_problem(path), path, 6, "Invalid value", "fix the TOML syntax")


def test_a_missing_file_is_one_problem(tmp_path):
    path = tmp_path / "absent.toml"
    assert_problem(only_problem(path), path, 1, "cannot read the experiment", "check the path")


def test_a_missing_subject_is_reported(tmp_path):
    path = write(tmp_path, "s.toml", 'name = "x"\n[workload]\nrate = 1\nrequests = 1\n'
                 '[[workload.endpoints]]\npath = "/"\n')
    assert_problem(only_problem(path), path, 1, "no [subject] table", "the program to measure")


def test_nothing_to_run_is_reported(tmp_path):
    path = write(tmp_path, "s.toml", MINIMAL.split("[workload]")[0])
    assert_problem(only_problem(path), path, 1, "nothing to run", "add a [workload] table")


def test_a_bad_name_is_reported(tmp_path):
    path = write(tmp_path, "s.toml", 'name = "my experiment"\n' + MINIMAL)
    assert_problem(only_problem(path), path, 1, "not a usable name", "letters, digits")


def test_a_missing_scenario_file_is_reported_at_its_key(tmp_path):
    path = write(tmp_path, "s.toml", 'description = "x"\nscenario = "gone.scenario"\n' + MINIMAL)
    assert_problem(only_problem(path), path, 2, "gone.scenario not found", "relative to s.toml")


def test_scenario_problems_come_from_the_scenario_file(tmp_path):
    path = write(tmp_path, "s.toml", 'scenario = "s.scenario"\n' + MINIMAL)
    scenario = write(tmp_path, "s.scenario", "@0:00 workload\n@0:01 get /x {2}\n")
    assert_problem(only_problem(path), scenario, 2, "instance 2 does not exist",
                   "instances are 1 to 1")


def test_a_scenario_calling_workload_needs_a_workload(tmp_path):
    path = write(tmp_path, "s.toml", 'scenario = "s.scenario"\n' + MINIMAL.split("[workload]")[0])
    scenario = write(tmp_path, "s.scenario", "@0:00 workload\n@0:10 end\n")
    assert_problem(only_problem(path), scenario, 1, "`workload` needs a [workload] table",
                   "add one")


def test_a_workload_the_scenario_never_runs_is_reported(tmp_path):
    path = write(tmp_path, "s.toml", 'scenario = "s.scenario"\n' + MINIMAL)
    write(tmp_path, "s.scenario", "@0:10 end\n")
    assert_problem(only_problem(path), path, 5, "the scenario never runs this workload",
                   "`@0:00 workload`")


def test_every_problem_is_reported_sorted_by_line_and_load_raises_with_all(tmp_path, capsys):
    path = write(tmp_path, "many.toml", """\
nmae = "x"

[subject]
command = ["{python}", "{prot}"]
instances = "two"

[workload]
rate = "fast"
requests = 10
[[workload.endpoints]]
path = "nope"

[probes]
sqlite = "yes"
""")
    problems = validate_experiment(path)
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == [1, 4, 5, 8, 11, 14]
    assert all(re.search(r"\(.+\)$", p) for p in problems)
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    assert "6 problems" in str(caught.value)
    assert all(p in str(caught.value) for p in problems)
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err.count(f"{path}:") == 6


# --- the reference doc covers the schema ------------------------------------------------------


def test_the_reference_documents_every_key_and_callable():
    doc = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    for table, keys in SCHEMA.items():
        for key in keys:
            assert f"`{key}`" in doc, f"docs/experiments.md lacks `{key}` of [{table}]"
    for name in CALLABLES:
        assert f"`{name}" in doc, name
    for name in RUNTIME_PLACEHOLDERS:
        assert f"{{{name}}}" in doc


def test_a_driver_that_is_not_wired_in_is_an_error_not_a_silent_substitute(tmp_path):
    source = (Path(__file__).resolve().parents[1] / "experiments" / "api-quick.toml").read_text()
    path = tmp_path / "jm.toml"
    path.write_text(source.replace('[workload]\n', '[workload]\ndriver = "gatling"\n', 1))
    problems = validate_experiment(path)
    assert any("driver" in p and "gatling" in p for p in problems), problems


# --- validate checks what the run would refuse ----------------------------------------------


def test_a_second_workload_line_is_reported(tmp_path):
    path = write(tmp_path, "s.toml", 'scenario = "s.scenario"\n' + MINIMAL)
    scenario = write(tmp_path, "s.scenario", "@0:00 workload\n@0:05 workload\n")
    assert_problem(only_problem(path), scenario, 2, "`workload` runs once per round",
                   "remove this line")


def test_the_instruction_tier_without_endpoints_is_reported(tmp_path):
    path = write(tmp_path, "s.toml", 'scenario = "s.scenario"\n'
                 + MINIMAL.split("[workload]")[0] + "\n[instructions]\nenabled = true\n")
    write(tmp_path, "s.scenario", "@0:01 end\n")
    assert "the instruction tier sends requests to the [workload] endpoints" in \
        only_problem(path)


def test_an_endpoint_path_placeholder_is_checked_once_filled(tmp_path):
    text = MINIMAL.replace('path = "/', 'path = "{p}')
    text = '[variables]\np = "/"\n\n' + text
    path = write(tmp_path, "s.toml", text)
    assert validate_experiment(path) == []
    assert "must start with '/'" in only_problem(path, {"p": "x/"})


def test_the_stop_table_is_checked(tmp_path):
    path = write(tmp_path, "s.toml", MINIMAL.replace(
        "[subject]", '[subject]\nstop = { http = "PUT shutdown", then = "KILL" }', 1))
    problems = validate_experiment(path)
    assert any("is not METHOD /path" in p for p in problems)
    assert any("SIGKILL always comes last" in p for p in problems)


def test_the_retired_functions_probe_is_refused_with_what_replaced_it(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(MINIMAL + "\n[probes]\nfunctions = true\n", encoding="utf-8")
    (problem,) = validate_experiment(path)
    assert problem.startswith(f"{path}:") and "probes.functions" in problem
    assert "[instructions] enabled = true" in problem
