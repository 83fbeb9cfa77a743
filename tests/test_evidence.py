"""End to end on the reference subject: `harness run` on a shipped experiment, and a counter that
catches 2% more bytes written per request from one round per side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.results import load_results

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _harness(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(cwd)})


def _copy_project(target: Path) -> Path:
    for part in ("harness", "subjects", "templates", "experiments"):
        shutil.copytree(ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    # api-quick without the in-process probes (they write their own samples, so bytes passed to
    # write follow the round's duration) and without the valgrind tier (not needed here)
    quick = target / "experiments" / "api-quick.toml"
    text = quick.read_text()
    for before, after in (("sqlite = true", "sqlite = false"),
                          ("loop_lag = true", "loop_lag = false"),
                          ("enabled = true", "enabled = false"),
                          ("[metrics.write_chars_per_request]\ngate = false",
                           "[metrics.write_chars_per_request]\ngate = true")):
        assert before in text, before
        text = text.replace(before, after)
    quick.write_text(text)
    return target


def test_api_stress_writes_results_with_the_recorded_count_and_rate(tmp_path):
    out = tmp_path / "out"
    proc = _harness(ROOT, "run", "experiments/api-stress.toml", "--out", str(out), "--quiet",
                    "--set", "torrents=2000")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = load_results(out / "results.json")
    (only,) = results.rounds
    assert only.valid, only.invalid_reason
    assert len(only.requests) == 200  # requests = 200 in the definition
    sends = sorted(only.requests.intended)
    rate = (len(sends) - 1) / (sends[-1] - sends[0])
    assert rate == pytest.approx(5.0, rel=0.01)  # rate = "5/s", on schedule
    assert only.summary["errors"] == 0
    assert only.summary["response_bytes_per_request"] > 500_000  # 1,200 channels: ~600 KB


def _run(tree: Path, out: Path, label: str) -> dict:
    proc = _harness(tree, "run", "experiments/api-quick.toml", "--out", str(out), "--label", label,
                    "--quiet", "--set", "torrents=2000")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "results.json").read_text())


def test_two_percent_more_bytes_written_per_request_is_caught_from_one_round(tmp_path):
    base = _copy_project(tmp_path / "base")
    cand = _copy_project(tmp_path / "cand")
    baseline = _run(base, tmp_path / "baseline", "baseline")
    per_request = baseline["rounds"][0]["summary"]["write_chars_per_request"]
    extra = max(1, round(0.02 * per_request))  # bytes more in each access-log line: about 2%
    tuning = cand / "subjects" / "peer" / "tuning.py"
    tuning.write_text(tuning.read_text().replace("ACCESS_LOG_PADDING = 0",
                                                 f"ACCESS_LOG_PADDING = {extra}"))
    _run(cand, tmp_path / "candidate", "candidate")
    proc = _harness(base, "compare", str(tmp_path / "baseline" / "results.json"),
                    str(tmp_path / "candidate" / "results.json"), "--out", str(tmp_path / "cmp"))
    verdict = json.loads((tmp_path / "cmp" / "verdict.json").read_text())
    written = {m["key"]: m for m in verdict["metrics"]}["write_chars_per_request"]
    assert written["verdict"] == "regression", written
    assert written["change"] == pytest.approx(extra / per_request, abs=0.002)
    assert proc.returncode == 2, proc.stdout + proc.stderr
