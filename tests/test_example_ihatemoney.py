"""examples/ihatemoney (docs/adopting.md) end to end, shortened: a real Flask + SQLAlchemy +
SQLite application from PyPI (installed through the test extras), bearer-token readiness and
requests, a seeded database prepared once, the SQLite probe."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ihatemoney"
SECRETS = {"IHM_PASSWORD": "correct-horse-battery", "IHM_SECRET_KEY": "a-key-only-for-tests"}

_spec = importlib.util.spec_from_file_location("check_pipeline", ROOT / "ci" / "check_pipeline.py")
check_pipeline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_pipeline)


@pytest.mark.slow
@pytest.mark.integration
def test_the_adopting_guide_experiment_runs_end_to_end(tmp_path):
    pytest.importorskip("ihatemoney", reason="install the test extras: pip install -e '.[test]'")
    folder = tmp_path / "app"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".perf-cache", "__pycache__"))
    toml = folder / "perf.toml"
    text = toml.read_text()
    assert 'duration = "30s"' in text and 'warmup = "5s"' in text
    for old, new in (('duration = "30s"', "requests = 24"), ('warmup = "5s"', 'warmup = "1s"'),
                     ('rate = "4/s"', 'rate = "8/s"')):
        text = text.replace(old, new)
    toml.write_text(text)
    env = {**os.environ, **SECRETS}
    env.pop("PYTHONPATH", None)
    token = subprocess.run([sys.executable, "api_token.py"], cwd=folder, env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    env["IHM_TOKEN"] = token
    command = [sys.executable, "-m", "harness", "run", "perf.toml", "--out", "out",
               "--rounds", "1", "--set", "bills=100", "--set", "members=4", "--quiet"]
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((folder / "out" / "results.json").read_text())
    (round_,) = data["rounds"]
    statuses = Counter(round_["requests"]["status"])
    assert set(statuses) <= {200, 201} and statuses[201] > 0, statuses  # POSTs created bills
    assert round_["summary"]["queries_per_request"] > 0  # the SQLite probe saw the ORM's queries
    # project_modules = ["ihatemoney"]: the application from site-packages is the caller, with
    # SQLAlchemy beside it, never SQLAlchemy alone
    callers = [c for s in round_["probes"]["sqlite"]["statements"] for c in s["callers"]]
    assert callers and all(c["where"].startswith("ihatemoney/") for c in callers), callers[:3]
    assert any(c["via"].startswith("sqlalchemy/") for c in callers), callers[:3]
    for path in (folder / "out").rglob("*"):  # neither the token nor the key leak into artifacts
        if path.is_file():
            text = path.read_text(errors="replace")
            assert token not in text and SECRETS["IHM_SECRET_KEY"] not in text, path
    assert token not in proc.stdout + proc.stderr


def test_the_guide_shows_the_example_jenkinsfile_as_it_is():
    jenkinsfile = (EXAMPLE / "Jenkinsfile").read_text()
    assert f"```groovy\n{jenkinsfile}```" in (ROOT / "docs" / "adopting.md").read_text()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("groovy") is None, reason="groovy is not installed")
def test_the_example_jenkinsfile_parses():
    assert check_pipeline.groovy_problems(EXAMPLE / "Jenkinsfile") == []
