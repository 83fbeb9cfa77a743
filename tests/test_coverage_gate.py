"""harness.coverage_gate on `coverage json` reports written by the real coverage tool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.coverage_gate import coverage_gate, evaluate
from harness.errors import HarnessError


def _report(total: float, files: dict[str, float]) -> dict:
    return {"meta": {"format": 3}, "totals": {"percent_covered": total},
            "files": {name: {"summary": {"percent_covered": pct}} for name, pct in files.items()}}


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_a_drop_beyond_tolerance_exits_2_and_lists_changed_files(tmp_path, capsys):
    cur = _write(tmp_path / "cur.json", _report(80.0, {"harness/cli.py": 50.0}))
    base = _write(tmp_path / "base.json", _report(82.0, {"harness/cli.py": 90.0}))
    code = coverage_gate(current=cur, baseline=base, tolerance=1.0,
                         changed_files=["harness/cli.py", "README.md"], out=tmp_path / "g.json")
    assert code == 2
    gate = json.loads((tmp_path / "g.json").read_text())
    assert gate["status"] == "drop" and gate["change"] == pytest.approx(-2.0)
    assert gate["files"] == [{"path": "harness/cli.py", "baseline": 90.0, "current": 50.0,
                              "change": -40.0}]
    assert "harness/cli.py: 90.0% -> 50.0%" in capsys.readouterr().out


def test_a_drop_within_tolerance_passes():
    result = evaluate(_report(81.5, {}), _report(82.0, {}), tolerance=0.5)
    assert result.status == "pass"


def test_the_default_tolerance_fails_any_drop_but_not_equal_totals():
    assert evaluate(_report(81.99, {}), _report(82.0, {}), tolerance=0).status == "drop"
    assert evaluate(_report(82.0, {}), _report(82.0, {}), tolerance=0).status == "pass"


def test_a_missing_baseline_is_an_error_unless_allowed(tmp_path, capsys):
    cur = _write(tmp_path / "cur.json", _report(70.0, {}))
    with pytest.raises(HarnessError, match="absent.json: no such baseline.*--allow-no-baseline"):
        coverage_gate(current=cur, baseline=tmp_path / "absent.json", tolerance=0,
                      changed_files=None, out=None)
    with pytest.raises(HarnessError, match="--allow-no-baseline"):
        coverage_gate(current=cur, baseline=None, tolerance=0, changed_files=[], out=None)
    assert coverage_gate(current=cur, baseline=tmp_path / "absent.json", tolerance=0,
                         changed_files=None, out=None, allow_no_baseline=True) == 0
    assert "no baseline" in capsys.readouterr().out


def test_an_allowed_missing_baseline_quotes_the_fetch_record(tmp_path, capsys):
    cur = _write(tmp_path / "cur.json", _report(70.0, {}))
    (tmp_path / "base").mkdir()
    _write(tmp_path / "base" / "baseline.json", {
        "status": "no-baseline", "job": "nightly", "artifact": "coverage.json",
        "jenkins_url": "http://j", "reasons": ["the job has no finished build yet"]})
    assert coverage_gate(current=cur, baseline=tmp_path / "base" / "coverage.json", tolerance=0,
                         changed_files=None, out=tmp_path / "g.json", allow_no_baseline=True) == 0
    assert "the job has no finished build yet" in capsys.readouterr().out


def test_an_unreadable_baseline_is_an_error_even_when_none_is_allowed(tmp_path):
    cur = _write(tmp_path / "cur.json", _report(70.0, {}))
    (tmp_path / "base.json").write_text("{truncated")
    with pytest.raises(HarnessError, match="base.json: not valid JSON"):
        coverage_gate(current=cur, baseline=tmp_path / "base.json", tolerance=0,
                      changed_files=None, out=None, allow_no_baseline=True)


@pytest.mark.parametrize("value", ["85.5", float("nan"), float("inf"), None, True, 120.0])
def test_a_percentage_that_is_not_a_number_is_an_error_not_a_pass(tmp_path, value):
    cur = tmp_path / "cur.json"
    cur.write_text(json.dumps({"totals": {"percent_covered": value}, "files": {}}))
    base = _write(tmp_path / "base.json", _report(90.0, {}))
    with pytest.raises(HarnessError, match="totals.percent_covered is"):
        coverage_gate(current=cur, baseline=base, tolerance=0, changed_files=None, out=None)
    with pytest.raises(HarnessError, match="totals.percent_covered is"):
        coverage_gate(current=base, baseline=cur, tolerance=0, changed_files=None, out=None)


def test_a_file_percentage_as_a_string_is_an_error_not_a_traceback(tmp_path):
    cur = _write(tmp_path / "cur.json", _report(80.0, {"harness/cli.py": "50"}))
    base = _write(tmp_path / "base.json", _report(80.0, {}))
    with pytest.raises(HarnessError, match="harness/cli.py.summary.percent_covered is '50'"):
        coverage_gate(current=cur, baseline=base, tolerance=0, changed_files=["harness/cli.py"],
                      out=None)


def test_the_cli_fails_closed_and_has_the_flag(tmp_path, capsys):
    from harness.cli import main

    cur = _write(tmp_path / "cur.json", _report(70.0, {}))
    args = ["coverage", "gate", "--current", str(cur), "--baseline", str(tmp_path / "no.json")]
    assert main(args) == 1
    assert main([*args, "--allow-no-baseline"]) == 0


def test_paths_match_across_separators_and_new_files_show_as_new():
    cur = _report(80, {"C:\\ws\\harness\\new.py": 75.0})
    result = evaluate(cur, _report(80, {}), tolerance=0, changed_files=["harness/new.py"])
    assert result.files[0].baseline is None and result.files[0].current == 75.0


def test_a_file_that_is_not_a_coverage_report_is_an_error(tmp_path):
    bad = _write(tmp_path / "bad.json", {"totals": {}})
    with pytest.raises(HarnessError, match="percent_covered"):
        coverage_gate(current=bad, baseline=None, tolerance=0, changed_files=None, out=None,
                      allow_no_baseline=True)


@pytest.mark.integration
def test_reports_written_by_coverage_json_are_read(tmp_path):
    (tmp_path / "mod.py").write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    (tmp_path / "run_all.py").write_text("import mod\nmod.f(1)\nmod.f(0)\n")
    (tmp_path / "run_half.py").write_text("import mod\nmod.f(1)\n")
    for name in ("all", "half"):
        for argv in (["run", "--data-file", f".cov.{name}", f"run_{name}.py"],
                     ["json", "--data-file", f".cov.{name}", "-o", f"{name}.json",
                      "--include", "mod.py"]):
            subprocess.run([sys.executable, "-m", "coverage", *argv], cwd=tmp_path, check=True,
                           capture_output=True)
    code = coverage_gate(current=tmp_path / "half.json", baseline=tmp_path / "all.json",
                         tolerance=0, changed_files=["mod.py"], out=tmp_path / "gate.json")
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert code == 2 and gate["current"] < gate["baseline"] == 100.0
    assert gate["files"][0]["change"] < 0


def test_a_tiny_drop_is_shown_with_the_digits_that_matter():
    result = evaluate(_report(82.0 - 0.003, {}), _report(82.0, {}), tolerance=0)
    assert result.status == "drop" and "-0.0030 points" in result.notes[0]
