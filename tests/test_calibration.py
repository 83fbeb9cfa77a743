"""The machine-speed calibration (harness.calibration): the side process, steal and frequency
recorded or named unavailable, the per-round record in results.json and the experiment switch."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

from harness import calibration
from harness.errors import ConfigError
from harness.experiment import load_experiment
from harness.results import Round
from tests.synthetic import make_round

ROOT = Path(__file__).resolve().parents[1]


def test_the_side_process_times_both_pieces_and_names_what_the_os_gives():
    timer = calibration.Calibrator()
    timer.before()
    timer.after()
    record = timer.record()
    for when in ("before", "after"):
        for piece in ("loop", "copy"):
            assert record[when][piece]["wall"] > 0 and record[when][piece]["cpu"] > 0
    assert record["seconds"] > 0
    # steal and frequency: a number where psutil gives one, else a reason, never a 0 in disguise
    assert ("steal" in record) != ("steal" in record.get("unavailable", {}))
    assert ("frequency_mhz" in record) != ("frequency" in record.get("unavailable", {}))


def test_a_platform_without_steal_or_frequency_says_so(monkeypatch):
    times = collections.namedtuple("times", "user system idle")
    monkeypatch.setattr(calibration.psutil, "cpu_times", lambda: times(1.0, 1.0, 1.0))
    monkeypatch.setattr(calibration.psutil, "cpu_freq", lambda: None)
    monkeypatch.setattr(calibration, "time_workload", lambda python=None: {})
    timer = calibration.Calibrator()
    timer.before()
    timer.after()
    record = timer.record()
    assert "steal" not in record and "frequency_mhz" not in record
    assert "no steal field" in record["unavailable"]["steal"]
    assert "reports nothing" in record["unavailable"]["frequency"]


def test_a_failing_side_process_is_recorded_not_raised(tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    run = calibration.time_workload(str(broken) if sys.platform != "win32" else "nonexistent")
    assert "error" in run
    assert calibration.speed({"before": run, "after": run}) is None


def test_speed_is_the_geometric_mean_of_the_runs_asked_for():
    record = {"before": {"loop": {"wall": 0.01, "cpu": 0.02}},
              "after": {"loop": {"wall": 0.04, "cpu": 0.02}}}
    assert calibration.speed(record) == pytest.approx(0.02)
    assert calibration.speed(record, clock="cpu") == pytest.approx(0.02)
    assert calibration.speed(record, when=("after",)) == pytest.approx(0.04)
    assert calibration.speed(record, piece="copy") is None
    assert calibration.speed(None) is None


def test_rounds_keep_their_calibration_and_older_rounds_still_load():
    record = {"before": {"loop": {"wall": 0.04, "cpu": 0.04}}, "seconds": 0.1, "steal": 0.002}
    rnd = make_round(0, {"latency_mean": 0.01}, calibration=record)
    assert Round.from_json(rnd.to_json()).calibration == record
    older = make_round(0, {"latency_mean": 0.01}).to_json()
    assert "calibration" not in older and Round.from_json(older).calibration is None


def _with_rounds(tmp_path: Path, line: str) -> Path:
    text = (ROOT / "experiments" / "api-quick.toml").read_text()
    path = tmp_path / "exp.toml"
    path.write_text(text.replace("[rounds]\n", f"[rounds]\n{line}\n"))
    return path


def test_the_experiment_switches_calibration_on_and_refuses_a_non_boolean(tmp_path):
    assert load_experiment(ROOT / "experiments" / "api-quick.toml").rounds.calibration is False
    assert load_experiment(_with_rounds(tmp_path, "calibration = true")).rounds.calibration
    with pytest.raises(ConfigError) as caught:
        load_experiment(_with_rounds(tmp_path, 'calibration = "yes"'))
    assert "calibration" in str(caught.value) and "true or false" in str(caught.value)
