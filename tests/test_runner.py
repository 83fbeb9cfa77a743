"""Rounds and experiments end to end against the tiny app: results.json, sweeps, scenarios."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness import driver as driver_mod
from harness.errors import ConfigError, SubjectError
from harness.experiment import Endpoint, MetricPolicy, load_experiment, validate_experiment
from harness.results import load_results
from harness.runner import run_experiment, run_round
from tests.data.tiny import (
    PYTHON,
    line,
    no_orphans,  # noqa: F401  (an autouse fixture)
    tiny_experiment,
    tiny_subject,
    tiny_workload,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def _run(experiment, out, **kwargs):
    return run_experiment(experiment, out_dir=out, label="candidate", progress=False,
                          project_root=out, python=PYTHON, **kwargs)


@pytest.mark.slow
def test_a_rate_sweep_writes_one_round_per_step_with_the_recorded_rate(tmp_path):
    experiment = tiny_experiment(workload=tiny_workload(rates=(50.0, 100.0), requests=100))
    experiment = type(experiment)(**{**experiment.__dict__,
                                     "metrics": {"latency_mean": MetricPolicy(gate=False)}})
    _run(experiment, tmp_path)
    results = load_results(tmp_path / "results.json")
    assert [r.step for r in results.rounds] == [50.0, 100.0]
    assert [r.index for r in results.rounds] == [0, 1]
    for r in results.rounds:
        assert r.valid and len(r.requests) == 100
        assert r.summary["responses_per_s"] == pytest.approx(r.step, rel=0.1)
        assert r.summary["errors"] == 0
        assert r.summary["cpu_per_request"] > 0
        assert r.resources.t[0] < 0 < r.resources.t[-1]  # the samples bracket the window
    assert results.experiment.variables == {"db": "none"}
    assert results.experiment.policies == {"latency_mean": {"gate": False}}
    assert results.environment["experiment_hash"] == "cd" * 32
    assert results.session["order"] == [[0, "candidate", 50.0], [1, "candidate", 100.0]]


def test_one_rate_gives_rounds_without_a_step(tmp_path):
    results = _run(tiny_experiment(workload=tiny_workload(requests=20, warmup=0)), tmp_path,
                   rounds=2)
    assert [(r.index, r.step) for r in results.rounds] == [(0, None), (1, None)]
    assert all(len(r.requests) == 20 for r in results.rounds)


def test_an_interrupted_run_leaves_no_results_file_and_no_process(tmp_path, monkeypatch):
    (tmp_path / "results.json").write_text("{}")  # from an earlier run: must not survive
    real = driver_mod.run_workload

    def interrupted(*args, **kwargs):
        if kwargs.get("on_progress") is not None or kwargs.get("start_at") is not None:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(driver_mod, "run_workload", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_experiment(workload=tiny_workload(requests=20)), tmp_path)
    assert not (tmp_path / "results.json").exists()
    assert not list(tmp_path.glob(".results.json*"))


def test_a_subject_that_fails_leaves_no_results_file(tmp_path):
    with pytest.raises(SubjectError, match="exited with code 3"):
        _run(tiny_experiment(subject=tiny_subject("exit")), tmp_path)
    assert not (tmp_path / "results.json").exists()
    assert "giving up" in (tmp_path / "work/round-0/instance-1/stderr.log").read_text()


def test_too_many_subject_errors_make_the_round_invalid(tmp_path):
    workload = tiny_workload(endpoints=(Endpoint("/fail", "fail"),), requests=20, warmup=0)
    results = _run(tiny_experiment(workload=workload), tmp_path)
    assert not results.valid
    assert "20 of 20 requests failed" in results.rounds[0].invalid_reason
    assert any("is invalid" in w for w in results.warnings)


def test_every_instance_gets_a_round_and_only_the_loaded_one_has_requests(tmp_path):
    experiment = tiny_experiment(subject=tiny_subject(instances=2),
                                 workload=tiny_workload(requests=20, warmup=0, instance=2))
    rounds = run_round(experiment, index=3, side="baseline", step=None, work_dir=tmp_path,
                       project_root=tmp_path, python=PYTHON)
    assert [(r.instance, len(r.requests)) for r in rounds] == [(1, 0), (2, 20)]
    assert all(r.index == 3 and r.side == "baseline" and r.resources for r in rounds)
    assert "responses_per_s" not in rounds[0].summary and "cpu_seconds" in rounds[0].summary
    assert not (tmp_path / "round-3/instance-1/state").exists()  # state removed, logs kept
    assert (tmp_path / "round-3/instance-1/stdout.log").exists()


@pytest.mark.slow
def test_a_scenario_runs_its_timeline(tmp_path):
    scenario = (
        line(0, "wait_for", "/status", "items.0.state", "complete"),
        line(0, "wait_for", "/status", "items.0.count", "3", "1200ms"),
        line(0, "post", "/echo", '{"infohash": "ab"}'),
        line(0.3, "workload", "40/s"),
        line(None, "get", "/missing"),
        line(0.4, "stop", instances=(2,)),
        line(0.5, "end"),
    )
    experiment = tiny_experiment(subject=tiny_subject(instances=2),
                                 workload=tiny_workload(requests=20), scenario=scenario)
    results = _run(experiment, tmp_path)
    first, second = results.rounds
    assert len(first.requests) == 20 and len(second.requests) == 0
    assert first.requests.intended[0] == pytest.approx(0.3 + driver_mod.START_LEAD, abs=0.1)
    assert first.summary["responses_per_s"] == pytest.approx(40, rel=0.1)
    assert first.duration >= 0.3 + 19 / 40  # `end` at 0.5 s waited for the workload
    assert any("GET /missing on instance 1 failed" in w for w in first.warnings)
    assert second.resources.columns["rss"][-1] == 0  # stopped at 0.4 s


def test_an_idle_scenario_measures_resources_only(tmp_path):
    experiment = tiny_experiment(no_workload=True, scenario=(line(0, "sleep", "0.3"),
                                                             line(0.3, "end")))
    (only,) = _run(experiment, tmp_path).rounds
    assert len(only.requests) == 0 and only.duration >= 0.3
    assert "cpu_seconds" in only.summary and "responses_per_s" not in only.summary


def test_an_unknown_scenario_callable_names_its_line(tmp_path):
    experiment = tiny_experiment(scenario=(line(0, "explode"),))
    with pytest.raises(ConfigError, match="tiny.scenario:explode: unknown callable 'explode'"):
        _run(experiment, tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_an_experiment_without_workload_or_scenario_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="neither a \\[workload\\] nor a scenario"):
        _run(tiny_experiment(no_workload=True), tmp_path)


def test_wait_for_names_the_field_it_never_saw(tmp_path):
    experiment = tiny_experiment(no_workload=True, scenario=(
        line(0, "wait_for", "/status", "items.0.state", "failed", "0.3s"),))
    with pytest.raises(SubjectError, match=r"field items.0.state was not 'failed' within 0.3 s "
                                           r"\(last seen: complete\)"):
        _run(experiment, tmp_path)


def test_sleep_reads_the_units_validate_accepts(tmp_path):
    experiment = tiny_experiment(no_workload=True, scenario=(line(0, "sleep", "0.005m"),
                                                             line(None, "sleep", "100ms"),
                                                             line(None, "end")))
    (only,) = _run(experiment, tmp_path).rounds
    assert only.duration >= 0.4


def test_an_instance_dying_during_the_round_makes_it_invalid(tmp_path):
    experiment = tiny_experiment(subject=tiny_subject("die-soon", instances=2),
                                 no_workload=True,
                                 scenario=(line(0, "sleep", "1.2"), line(None, "end")))
    results = _run(experiment, tmp_path)
    assert not results.valid
    assert all("exited with code 7" in r.invalid_reason for r in results.rounds)


def test_rounds_record_how_each_instance_was_stopped(tmp_path):
    results = _run(tiny_experiment(workload=tiny_workload(requests=10)), tmp_path)
    (only,) = results.rounds
    assert only.stop["step"] == "SIGTERM" and "warning" not in only.stop
    assert load_results(tmp_path / "results.json").rounds[0].stop["step"] == "SIGTERM"


# -- every shipped experiment runs end to end (shortened) ----------------------------------------

SHIPPED = sorted(ROOT.glob("experiments/*.toml"))
SMALL = {"channels": "5", "torrents": "40", "source_torrents": "40", "idle": "0:02",
         "sync_interval": "0.5", "download_timeout": "60s"}


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_experiment_runs(path, tmp_path):
    assert validate_experiment(path) == []
    raw = load_experiment(path)
    overrides = {k: v for k, v in SMALL.items() if k in raw.variables}
    experiment = load_experiment(path, overrides=overrides)
    if experiment.workload is not None:  # --set shortens the state, this the load
        experiment = dataclasses.replace(experiment, workload=dataclasses.replace(
            experiment.workload, requests=8, duration=None, warmup=0.0,
            rates=tuple(sorted(experiment.workload.rates)[-2:])))
    results = run_experiment(experiment, out_dir=tmp_path, label="candidate", progress=False,
                             project_root=ROOT, python=PYTHON)
    assert results.valid, [r.invalid_reason for r in results.rounds]
    assert not [w for r in results.rounds for w in r.warnings if "failed" in w]


def test_rounds_carry_the_calibration_when_the_experiment_asks(tmp_path):
    from harness.experiment import Rounds

    experiment = dataclasses.replace(tiny_experiment(workload=tiny_workload(requests=20)),
                                     rounds=Rounds(count=1, calibration=True))
    (calibrated,) = _run(experiment, tmp_path / "on").rounds
    for when in ("before", "after"):
        assert calibrated.calibration[when]["loop"]["wall"] > 0
    saved = load_results(tmp_path / "on" / "results.json").rounds[0]
    assert saved.calibration == calibrated.calibration
    (plain,) = _run(tiny_experiment(workload=tiny_workload(requests=20)), tmp_path / "off").rounds
    assert plain.calibration is None
