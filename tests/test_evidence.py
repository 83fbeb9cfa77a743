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


def _copy_tree(target: Path) -> Path:
    for part in ("harness", "subjects", "templates", "experiments"):
        shutil.copytree(ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _copy_project(target: Path) -> Path:
    _copy_tree(target)
    # api-quick without the query, lag and file probes and without the valgrind tier (not needed
    # here), with the bytes passed to write gated (shown, not gated, by default) as a user may ask
    quick = target / "experiments" / "api-quick.toml"
    text = quick.read_text()
    for before, after in (("sqlite = true", "sqlite = false"),
                          ("loop_lag = true", "loop_lag = false"),
                          ("files = true", "files = false"),
                          ("enabled = true", "enabled = false")):
        assert before in text, before
        text = text.replace(before, after)
    assert "[metrics.write_chars_per_request]" not in text
    quick.write_text(text + "\n[metrics.write_chars_per_request]\ngate = true\n")
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


def _turn(tree: Path, knob: str, value: int) -> None:
    tuning = tree / "subjects" / "peer" / "tuning.py"
    text = tuning.read_text()
    assert f"{knob} = 0" in text, knob
    tuning.write_text(text.replace(f"{knob} = 0", f"{knob} = {value}"))


def test_a_log_line_more_per_request_is_put_in_the_log_file_and_does_not_fail_the_build(tmp_path):
    """Issue 12: with api-quick's own probes and gates (the valgrind tier off, not needed here),
    a candidate that writes one more access-log line per request is shown, in the log file, and
    the build passes; the probes' own output is not in the subject's bytes."""
    trees = {}
    for label in ("baseline", "candidate"):
        tree = _copy_tree(tmp_path / f"tree-{label}")
        quick = tree / "experiments" / "api-quick.toml"
        text = quick.read_text()
        assert "files = true" in text and "\nenabled = true" in text
        quick.write_text(text.replace("\nenabled = true", "\nenabled = false"))
        trees[label] = tree
    _turn(trees["candidate"], "ACCESS_LOG_EXTRA_LINES", 1)
    runs = {}
    for label, tree in trees.items():
        proc = _harness(tree, "run", "experiments/api-quick.toml", "--out", str(tmp_path / label),
                        "--label", label, "--quiet", "--set", "torrents=2000",
                        "--set", "channels=100")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs[label] = tmp_path / label / "results.json"
    proc = _harness(trees["baseline"], "compare", str(runs["baseline"]), str(runs["candidate"]),
                    "--out", str(tmp_path / "cmp"))
    verdict = json.loads((tmp_path / "cmp" / "verdict.json").read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the default gates: not a failure
    assert verdict["overall"] != "regression", verdict["reasons"]
    metrics = {m["key"]: m for m in verdict["metrics"]}
    # the extra line's length, as the peer writes it (a fixed-width time stamp)
    line = len(f'{1e9:.3f} debug "GET /channels" handled\n')
    logged = metrics["log_write_bytes_per_request"]
    assert logged["verdict"] == "regression" and not logged["gate"], logged
    assert logged["candidate"] - logged["baseline"] == pytest.approx(line, abs=0.01)
    # database I/O gates by default; the peer's GET /channels writes nothing to its database
    database = metrics["db_write_bytes_per_request"]
    assert database["gate"] and database["verdict"] == "unchanged", database
    # every byte passed to write: moved by the log line alone, ungated. The probes write nothing
    # while the subject is measured (their output is not the subject's)
    written = metrics["write_chars_per_request"]
    assert not written["gate"]
    assert written["candidate"] - written["baseline"] == pytest.approx(line, abs=1.0)
    where = f"+{line} B written per request, all in the log file access.log"
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    # one finding for the bytes, the log's own metric, with the file named as its likely cause
    assert "- **regression**: log writes / request: " in summary
    assert f"  - likely cause: {where}" in summary, summary
    assert where in (tmp_path / "cmp" / "report.html").read_text()
