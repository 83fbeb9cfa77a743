"""Requests and readiness that real services need: headers, secret values, methods and bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.experiment import load_experiment, validate_experiment
from harness.secrets import redact

ROOT = Path(__file__).resolve().parents[1]
KEY = "s3cret-key-4711"

KEYED = f"""\
name = "keyed"

[subject]
command = ["{{python}}", "{ROOT / 'tests' / 'subjects' / 'keyed.py'}", "{{port}}"]
env = {{ KEYED_API_KEY = "{{env:PERF_TEST_KEY}}" }}
ready = {{ http = "/settings?user={{user}}", method = "GET", status = 200, timeout = "20s", \
headers = {{ X-Api-Key = "{{env:PERF_TEST_KEY}}" }} }}

[variables]
user = "alice"

[workload]
rate = "40/s"
requests = 30
warmup = "0s"
headers = {{ X-Api-Key = "{{env:PERF_TEST_KEY}}" }}

[[workload.endpoints]]
name = "read"
path = "/items?user={{user}}"

[[workload.endpoints]]
name = "write"
path = "/items"
method = "POST"
body = {{ title = "x" }}

[rounds]
count = 1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keyed.toml"
    path.write_text(text)
    return path


def test_headers_and_env_values_are_expanded_everywhere_and_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("PERF_TEST_KEY", KEY)
    experiment = load_experiment(_write(tmp_path, KEYED))
    ready = experiment.subject.ready
    assert ready.http == "/settings?user=alice" and ready.headers == {"X-Api-Key": KEY}
    assert ready.status == (200,)
    assert experiment.subject.env["KEYED_API_KEY"] == KEY
    read, write = experiment.workload.endpoints
    assert read.path == "/items?user=alice" and read.headers == {"X-Api-Key": KEY}
    assert write.method == "POST" and write.headers["Content-Type"] == "application/json"
    assert write.headers["X-Api-Key"] == KEY
    assert redact(f"sent {KEY} twice: {KEY}") == "sent *** twice: ***"


def test_validate_names_unknown_placeholders_in_readiness_and_unset_variables(tmp_path,
                                                                              monkeypatch):
    monkeypatch.delenv("PERF_TEST_KEY", raising=False)
    text = KEYED.replace("/settings?user={user}", "/settings?apikey={key}")
    problems = "\n".join(validate_experiment(_write(tmp_path, text)))
    assert "subject.ready.http" in problems and "unknown placeholder {key}" in problems
    assert "environment variable PERF_TEST_KEY is not set" in problems
    assert "workload.headers.X-Api-Key" in problems


def test_a_readiness_status_must_be_an_http_status(tmp_path, monkeypatch):
    monkeypatch.setenv("PERF_TEST_KEY", KEY)
    problems = validate_experiment(_write(tmp_path, KEYED.replace("status = 200", "status = 2")))
    assert any("subject.ready.status" in p for p in problems), problems


@pytest.mark.integration
def test_a_service_that_needs_its_key_for_readiness_and_requests(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(_write(tmp_path, KEYED)), "--out", str(out),
         "--quiet"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PERF_TEST_KEY": KEY},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((out / "results.json").read_text())
    statuses = {s for r in data["rounds"] for s in r["requests"]["status"]}
    assert statuses <= {200, 201}, statuses  # every request carried the key, the body was JSON
    logs = "".join(p.read_text() for p in out.rglob("stdout.log"))
    assert "refused" not in logs  # readiness too
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    assert KEY not in proc.stdout + proc.stderr
