"""Injection: the environment, the chaining startup hook, warnings, and the at-exit flush."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.experiment import Probes
from harness.probes import collect_probe_data, mark_measuring, probe_environment
from harness.probes.inject import BOOT_DIR
from tests.probes_support import probed_env

BOTH = Probes(sqlite=True, loop_lag=True)


def test_no_in_process_probe_leaves_the_environment_alone(tmp_path) -> None:
    env, warnings = probe_environment(Probes(), data_dir=tmp_path, base_env={"A": "1"},
                                      is_python=True)
    assert env == {"A": "1"} and warnings == []


def test_a_subject_that_is_not_python_runs_unprobed_with_a_warning(tmp_path) -> None:
    env, warnings = probe_environment(BOTH, data_dir=tmp_path, base_env={"PATH": "/bin"},
                                      is_python=False)
    assert env == {"PATH": "/bin"}
    assert len(warnings) == 1 and "sqlite, loop_lag" in warnings[0] and "unprobed" in warnings[0]


def test_the_hook_goes_first_on_pythonpath_and_keeps_the_rest(tmp_path) -> None:
    probes = Probes(sqlite=True, loop_lag_interval=0.25, flush_interval=2.0)
    env, _ = probe_environment(probes, data_dir=tmp_path / "d", base_env={"PYTHONPATH": "/x"},
                               is_python=True)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOT_DIR), "/x"]
    assert env["PERF_PROBES"] == "sqlite"
    assert env["PERF_PROBE_DIR"] == str((tmp_path / "d").resolve())
    assert float(env["PERF_PROBE_LOOP_LAG_INTERVAL"]) == 0.25
    assert float(env["PERF_PROBE_FLUSH_INTERVAL"]) == 2.0
    assert (BOOT_DIR / "sitecustomize.py").is_file()


def _run(code: str, env: dict[str, str], cwd: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", code], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


QUERY = "import sqlite3; sqlite3.connect(':memory:').execute('SELECT 1').fetchall(); print('done')"


def _statements(probes: dict) -> set[str]:
    return {row["statement"] for row in probes.get("sqlite", {}).get("statements", [])}


@pytest.mark.integration
def test_the_hook_chains_to_the_sitecustomize_it_shadows(tmp_path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text(
        "import os\nopen(os.environ['MARKER'], 'w').write('ran')\n")
    env = probed_env(tmp_path / "d", Probes(sqlite=True), {"MARKER": str(tmp_path / "marker")})
    env["PYTHONPATH"] += os.pathsep + str(theirs)
    done = _run(QUERY, env, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    assert (tmp_path / "marker").read_text() == "ran"
    probes = collect_probe_data(tmp_path / "d")
    assert _statements(probes) == {"SELECT ?"} and "warnings" not in probes


@pytest.mark.integration
def test_a_failing_sitecustomize_of_the_subject_is_reported_not_fatal(tmp_path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("raise RuntimeError('theirs is broken')\n")
    env = probed_env(tmp_path / "d", BOTH)
    env["PYTHONPATH"] += os.pathsep + str(theirs)
    done = _run(QUERY, env, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "done"
    assert "Error in sitecustomize" in done.stderr
    warnings = collect_probe_data(tmp_path / "d")["warnings"]
    assert any("theirs is broken" in w for w in warnings)


@pytest.mark.integration
def test_when_injection_fails_the_subject_runs_unprobed_with_a_warning(tmp_path) -> None:
    env = probed_env(tmp_path / "d", BOTH)
    done = _run(QUERY, env, tmp_path, "-I")  # isolated mode ignores PYTHONPATH
    assert done.returncode == 0 and done.stdout.strip() == "done"
    probes = collect_probe_data(tmp_path / "d")
    assert "sqlite" not in probes
    assert any("no Python process" in w and "unprobed" in w for w in probes["warnings"])


@pytest.mark.integration
def test_bad_probe_configuration_becomes_warnings_and_the_subject_still_runs(tmp_path) -> None:
    env = probed_env(tmp_path / "d", BOTH)
    env.update(PERF_PROBES="sqlite,nosuch", PERF_PROBE_LOOP_LAG_INTERVAL="soon",
               PERF_PROBE_FLUSH_INTERVAL="-1")
    done = _run(QUERY, env, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "done"
    probes = collect_probe_data(tmp_path / "d")
    assert _statements(probes) == {"SELECT ?"}
    text = " ".join(probes["warnings"])
    assert "'nosuch'" in text and "PERF_PROBE_FLUSH_INTERVAL='-1'" in text


def test_unreadable_probe_files_are_warned_about_and_skipped(tmp_path) -> None:
    (tmp_path / "hook-1.json").write_text("{}")
    (tmp_path / "sqlite-1.json").write_text("{not json")
    probes = collect_probe_data(tmp_path)
    assert "sqlite" not in probes and "sqlite-1.json" in probes["warnings"][0]


def test_processes_are_merged(tmp_path) -> None:
    row = {"statement": "SELECT ?", "operation": "execute", "calls": 2, "total": 0.5,
           "max": 0.3, "min": 0.2, "rows": 0, "callers": [{"where": "a.py:1 f", "calls": 2,
                                                            "total": 0.5}]}
    part = {"operations": {"execute": {"calls": 2, "total": 0.5, "max": 0.3, "min": 0.2,
                                       "rows": 0}}, "statements": [row]}
    for pid in (1, 2):
        (tmp_path / f"sqlite-{pid}.json").write_text(json.dumps(part))
        (tmp_path / f"hook-{pid}.json").write_text("{}")
    (tmp_path / "loop_lag-1.json").write_text(json.dumps(
        {"kind": "asyncio", "interval": 0.1, "samples": [0.1]}))
    (tmp_path / "loop_lag-2.json").write_text(json.dumps(
        {"kind": "asyncio", "interval": 0.1, "samples": [0.0, 0.2]}))
    probes = collect_probe_data(tmp_path)
    merged = probes["sqlite"]["statements"][0]
    assert merged["calls"] == 4 and merged["total"] == 1.0 and merged["callers"][0]["calls"] == 4
    assert probes["loop_lag"]["samples"] == [0.0, 0.2]  # the process whose loop ran longest


SERVE = """
import signal, sqlite3, sys, time
db = sqlite3.connect(':memory:')
db.execute('SELECT 1')
{handler}
print('ready', flush=True)
while True:
    time.sleep(0.05)
"""
HANDLER = """
def on_term(signum, frame):
    open(sys.argv[1], 'w').write('theirs')
    sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
"""


def _serve_and_terminate(tmp_path: Path, handler: str) -> int:
    env = probed_env(tmp_path / "d", BOTH, {"PERF_PROBE_FLUSH_INTERVAL": "60"})
    code = SERVE.format(handler=handler)
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "marker")], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert not list((tmp_path / "d").glob("sqlite-*.json"))  # nothing flushed yet
        proc.send_signal(signal.SIGTERM)
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_sigterm_flushes_and_the_process_still_dies_of_it(tmp_path) -> None:
    assert _serve_and_terminate(tmp_path, "") == -signal.SIGTERM
    assert _statements(collect_probe_data(tmp_path / "d")) == {"SELECT ?"}


@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_the_subjects_own_sigterm_handler_still_runs_and_atexit_flushes(tmp_path) -> None:
    assert _serve_and_terminate(tmp_path, HANDLER) == 3
    assert (tmp_path / "marker").read_text() == "theirs"
    assert _statements(collect_probe_data(tmp_path / "d")) == {"SELECT ?"}


@pytest.mark.integration
def test_data_is_flushed_periodically_while_the_subject_runs(tmp_path) -> None:
    env = probed_env(tmp_path / "d", BOTH, {"PERF_PROBE_FLUSH_INTERVAL": "0.05"})
    code = SERVE.format(handler="")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not list((tmp_path / "d").glob("sqlite-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _statements(collect_probe_data(tmp_path / "d")) == {"SELECT ?"}
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


FORK = """
import os, sqlite3, sys
db = sqlite3.connect(':memory:')
db.execute('SELECT 1')
pid = os.fork()
if pid == 0:
    db.execute('SELECT 2')
    db.execute('SELECT 3')
    sys.exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_counts_only_its_own_queries(tmp_path) -> None:
    env = probed_env(tmp_path / "d", BOTH)
    done = _run(FORK, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "d").glob("sqlite-*.json"))) == 2
    operations = collect_probe_data(tmp_path / "d")["sqlite"]["operations"]
    assert operations["execute"]["calls"] == 3  # 1 in the parent, 2 in the child, none twice


@pytest.mark.integration
def test_no_loop_is_reported_and_a_reused_directory_starts_clean(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "sqlite-999999.json").write_text('{"operations": {}, "statements": []}')
    env = probed_env(tmp_path / "d", BOTH)
    assert not (tmp_path / "d" / "sqlite-999999.json").exists()
    done = _run(QUERY, env, tmp_path)
    assert done.returncode == 0
    probes = collect_probe_data(tmp_path / "d")
    assert _statements(probes) == {"SELECT ?"}
    assert any("no event loop was seen" in w for w in probes["warnings"])


def _script(tmp_path, name: str, first_lines: str, body: str = "") -> str:
    path = tmp_path / name
    path.write_text(first_lines + "\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def test_console_scripts_of_a_python_interpreter_are_python(tmp_path, monkeypatch) -> None:
    from harness.probes import is_python_command

    py = sys.executable
    assert is_python_command(["{python}", "-m", "app"], py)
    assert is_python_command([_script(tmp_path, "serve", f"#!{py}")], py)
    assert is_python_command([_script(tmp_path, "env", "#!/usr/bin/env python3")], py)
    launcher = f"#!/bin/sh\n'''exec' \"{py}\" \"$0\" \"$@\"\n' '''"  # pip's, for long paths
    assert is_python_command([_script(tmp_path, "long", launcher)], py)
    monkeypatch.setenv("PATH", str(tmp_path))  # `datasette serve`: found on PATH by name
    _script(tmp_path, "datasette", f"#!{py}")
    assert is_python_command(["datasette", "serve"], py)
    # not Python, or a Python that would skip the startup hook (-I, -E, -S)
    assert not is_python_command([_script(tmp_path, "run.sh", "#!/bin/sh")], py)
    assert not is_python_command([_script(tmp_path, "iso", f"#!{py} -I")], py)
    assert not is_python_command([_script(tmp_path, "nosite", f"#!{py} -sS")], py)
    assert not is_python_command(["no-such-command-here"], py)
    assert is_python_command(["no-such-command-here"], py, declared=True)


@pytest.mark.integration
def test_a_console_script_subject_is_probed(tmp_path) -> None:
    body = "import sqlite3\nsqlite3.connect(':memory:').execute('SELECT 1').fetchall()\n"
    script = _script(tmp_path, "tool", f"#!{sys.executable}", body)
    data = tmp_path / "probes"
    env, warnings = probe_environment(Probes(sqlite=True), data_dir=data,
                                      base_env=dict(os.environ), is_python=True)
    assert warnings == []
    subprocess.run([script], env=env, check=True, timeout=60)
    probes = collect_probe_data(data)
    assert "warnings" not in probes
    assert probes["sqlite"]["operations"]["execute"]["calls"] == 1


def test_validate_warns_loudly_when_probes_cannot_be_injected(tmp_path, capsys) -> None:
    from harness.cli import main

    experiment = tmp_path / "e.toml"
    experiment.write_text(
        '[subject]\ncommand = ["/bin/sh", "-c", "sleep 1"]\nready = { log = "x" }\n'
        '[workload]\nrate = "1/s"\nrequests = 1\n[[workload.endpoints]]\npath = "/"\n'
        '[probes]\nsqlite = true\n', encoding="utf-8")
    assert main(["validate", str(experiment)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "runs unprobed" in err


def test_the_code_that_runs_inside_the_subject_parses_as_python_3_7() -> None:
    import ast

    inside = [p for p in BOOT_DIR.parent.glob("*.py")
              if p.name not in ("__init__.py", "breakdown.py", "summary.py", "inject.py")]
    inside.append(BOOT_DIR / "sitecustomize.py")
    assert len(inside) >= 9
    for path in inside:
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 7))


@pytest.mark.integration
def test_a_subject_killed_after_the_warm_up_leaves_no_stale_data_and_a_warning(tmp_path) -> None:
    data = tmp_path / "probes"
    env = probed_env(data, Probes(sqlite=True, flush_interval=0.05))
    code = ("import sqlite3, time\n"
            "db = sqlite3.connect(':memory:')\n"
            "db.execute('SELECT 1')\n"  # the warm-up's statement, flushed periodically
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 20
        while not list(data.glob("sqlite-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(data.glob("sqlite-*.json"))
        assert mark_measuring([data]) == []
        assert not list(data.glob("sqlite-*.json"))  # quiet now: nothing stale to misread
    finally:
        proc.kill()
        proc.wait()
    probes = collect_probe_data(data)
    assert "sqlite" not in probes
    assert any("wrote no probe data after the warm-up" in w for w in probes["warnings"])
