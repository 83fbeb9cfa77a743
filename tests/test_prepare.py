"""`[subject] prepare`: once per side and environment, kept while its inputs stay the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.experiment import validate_experiment

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "data" / "tiny_app.py"

PREPARE = """\
import os, pathlib, sys
out = pathlib.Path(sys.argv[1])
last = pathlib.Path(__file__).read_text().splitlines()[-1]
(out / "fill.txt").write_text("prepared by " + last)
# counts the runs, and whether the probe hook was on
with open(os.path.join(sys.argv[2], "runs.log"), "a") as log:
    log.write(os.environ.get("PERF_PROBES", "unprobed") + "\\n")
# version 1
"""

EXPERIMENT = f"""\
name = "prepared"

[subject]
command = ["{{python}}", "{APP}", "--port", "{{port}}", "--state-dir", "{{state_dir}}"]
prepare = [["{{python}}", "{{experiment_dir}}/prepare.py", "{{prepare_dir}}", "{{experiment_dir}}"]]
setup = [["{{python}}", "-c", "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])", \
"{{prepare_dir}}/fill.txt", "{{state_dir}}/fill.txt"]]

[workload]
rate = "50/s"
requests = 10
warmup = "0s"

[[workload.endpoints]]
path = "/hello"

[probes]
sqlite = true

[rounds]
count = 2
"""


def _run(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "run", "perf.toml", "--out", "out",
                           "--quiet"], cwd=folder, capture_output=True, text=True, timeout=300)


def test_prepare_dir_without_a_prepare_step_is_a_problem(tmp_path):
    text = EXPERIMENT.replace('prepare = [[', '# [[')
    (tmp_path / "perf.toml").write_text(text)
    problems = validate_experiment(tmp_path / "perf.toml")
    assert any("{prepare_dir} is used but there is no prepare step" in p for p in problems)


@pytest.mark.integration
def test_prepare_runs_once_unprobed_and_again_only_when_its_script_changes(tmp_path):
    (tmp_path / "perf.toml").write_text(EXPERIMENT)
    (tmp_path / "prepare.py").write_text(PREPARE)
    for _ in range(2):
        proc = _run(tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = (tmp_path / "runs.log").read_text().split()
    assert runs == ["unprobed"]  # 2 runs x 2 rounds, one prepare, without the probe hook
    seeded = list((tmp_path / "out" / "work").rglob("setup-1.log"))
    assert len(seeded) == 2  # setup stays per round
    (tmp_path / "prepare.py").write_text(PREPARE.replace("version 1", "version 2"))
    assert _run(tmp_path).returncode == 0
    assert (tmp_path / "runs.log").read_text().split() == ["unprobed", "unprobed"]
    kept = list((tmp_path / ".perf-cache" / "prepared").glob("*/fill.txt"))
    assert sorted(p.read_text() for p in kept) == ["prepared by # version 1",
                                                   "prepared by # version 2"]
