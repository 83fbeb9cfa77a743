"""The fault suite (marker `faults`): every row of the reliability issue, through the CLI.

Each test asserts the exit code, the message, that no process this harness started is left (by
its environment marker and by PID), that no stale or partial output is left, and, for secrets,
that no planted token appears in anything printed or written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness import process
from harness.cli import main
from harness.outputs import FAILED_MARKER
from harness.results import save_results
from harness.subject import http_ok
from tests.data.tiny import APP, no_orphans, tiny_processes  # noqa: F401  (autouse fixture)

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[1]

TINY = """
[variables]
mode = "normal"
path = "/hello"
{extra_variables}

[subject]
command = ["{{python}}", "{app}", "--port", "{{port}}", "--state-dir", "{{state_dir}}",
           "--mode", "{{mode}}"]
instances = {instances}
ready = {{ http = "/health", timeout = "20s" }}
stop_timeout = "1s"
{subject_extra}

[probes]
resource_interval = "0.2s"
"""

WORKLOAD = """
[workload]
rate = "50/s"
requests = 10
warmup = "0s"
max_lag = "1s"

[[workload.endpoints]]
path = "{path}"
"""


def experiment(tmp_path: Path, *, instances: int = 1, scenario: str | None = None,
               workload: bool = True, subject_extra: str = "", extra_variables: str = "") -> Path:
    text = TINY.format(app=APP.as_posix(), instances=instances, subject_extra=subject_extra,
                       extra_variables=extra_variables)
    if scenario is not None:
        (tmp_path / "tiny.scenario").write_text(scenario)
        text = 'scenario = "tiny.scenario"\n' + text
    if workload:
        text += WORKLOAD
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def ours() -> list[psutil.Process]:
    """Processes carrying this harness process' marker that still run."""
    return [p for p in process.marked(process.marker_prefix(), prefix=True)
            if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(autouse=True)
def no_marked_leftovers():
    yield
    left = ours()
    for proc in left:
        proc.kill()
    assert not left, f"processes left running: {left}"


def run(*args: str, capsys) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. shipped grammar runs as validated ---------------------------------------------------------

def test_wait_for_and_duration_units_run_as_validated(tmp_path, capsys):
    path = experiment(tmp_path, workload=False, scenario=(
        "@0:00 wait_for /status items.0.state complete 5s {1}\n"
        "@! sleep 200ms\n@! sleep 0.005m\n@! end\n"))
    assert run("validate", str(path), capsys=capsys)[0] == 0
    code, out, err = run("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                         capsys=capsys)
    assert code == 0, err
    assert "wrote" in out


@pytest.mark.parametrize("line, message", [
    ("@0:00 wait_for /status", "wait_for takes 3 to 4 arguments"),
    ("@0:00 sleep 5parsecs", "is not a duration"),
    ("@0:00 get /x {7}", "instance 7 does not exist"),
])
def test_validate_refuses_what_the_run_would_refuse(tmp_path, capsys, line, message):
    path = experiment(tmp_path, workload=False, scenario=line + "\n")
    code, _, err = run("validate", str(path), capsys=capsys)
    assert code == 1 and message in err


# -- 2. a death during a round is an invalid round, printed ---------------------------------------

@pytest.mark.slow
def test_killing_a_peer_of_the_idle_experiment_fails_the_run_saying_why(tmp_path, capsys):
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_peer_3() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for proc in psutil.process_iter(["cmdline"]):
                cmdline = " ".join(proc.info.get("cmdline") or [])
                if "subjects.peer serve" in cmdline and "instance-3" in cmdline:
                    argv = proc.info["cmdline"]
                    port = argv[argv.index("--port") + 1]
                    while not http_ok(f"http://127.0.0.1:{port}/health"):
                        time.sleep(0.05)
                    time.sleep(1.0)  # every peer is ready: well inside the measured window
                    proc.kill()
                    killed.append(proc.pid)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_peer_3, daemon=True)
    killer.start()
    code, _, err = run("run", str(ROOT / "experiments/idle.toml"), "--out", str(out), "--quiet",
                       "--set", "idle=0:05", "--set", "channels=5", "--set", "torrents=40",
                       capsys=capsys)
    killer.join()
    assert killed
    assert code == 1
    assert "rounds are invalid" in err and "instance 3 exited with code -9" in err
    assert json.loads((out / "results.json").read_text())["rounds"][0]["valid"] is False


def test_http_errors_make_run_exit_1_with_the_reason_and_the_classes(tmp_path, capsys):
    path = experiment(tmp_path)
    code, _, err = run("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                       "--set", "path=/fail", capsys=capsys)
    assert code == 1
    assert "10 of 10 requests failed" in err and "first error: HTTP 500" in err
    assert "10 http_status" in err
    saved = json.loads((tmp_path / "out/results.json").read_text())
    assert saved["rounds"][0]["errors"] == {"http_status": 10}


# -- 3. all-or-nothing outputs --------------------------------------------------------------------

def test_a_failed_perf_leaves_the_old_outputs_untouched_and_marked(tmp_path, capsys,
                                                                   monkeypatch):
    out = tmp_path / "perf-out"
    (out / "work" / "round-000-baseline").mkdir(parents=True)
    (out / "verdict.json").write_text('{"old": true}')
    before = {p.relative_to(out): p.read_bytes() if p.is_file() else None
              for p in out.rglob("*")}

    def failing_perf(*, out_dir, **kwargs):
        (out_dir / "work" / "round-000-candidate").mkdir(parents=True)
        (out_dir / "verdict.json").write_text('{"new": "half"}')
        from harness.errors import SubjectError
        raise SubjectError("instance 1 exited with code 3 before it was ready")

    import harness.perf
    monkeypatch.setattr(harness.perf, "run_perf", failing_perf)
    code, _, err = run("perf", "x.toml", "--out", str(out), capsys=capsys)
    assert code == 1 and "exited with code 3" in err
    after = {p.relative_to(out): p.read_bytes() if p.is_file() else None
             for p in out.rglob("*") if p.name != FAILED_MARKER}
    assert after == before  # untouched: no new round in work/, the old verdict as it was
    assert "failed" in (out / FAILED_MARKER).read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["perf-out"]  # no staging directory left


# -- 4. Ctrl-C during `git worktree add` ----------------------------------------------------------

def test_ctrl_c_during_worktree_add_leaks_nothing(tmp_path, monkeypatch):
    from harness import worktree

    root = tmp_path / "repo"
    root.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env, capture_output=True)
    real = worktree._git  # noqa: SLF001

    def interrupted(args, cwd, **kwargs):
        result = real(args, cwd, **kwargs)
        if args[:2] == ["worktree", "add"]:
            real(["worktree", "lock", args[-2]], cwd, check=False)  # as an unfinished add leaves it
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(worktree, "_git", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with worktree.baseline_checkout(root, "HEAD", cache=tmp_path / "cache"):
            pass
    listed = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True,
                            text=True, check=True).stdout.strip().splitlines()
    assert len(listed) == 1
    assert list((tmp_path / "cache").iterdir()) == []


# -- 5. secrets -----------------------------------------------------------------------------------

TOKENS = {"GITHUB_TOKEN": "ghp_MARKER_github_1234", "JENKINS_TOKEN": "jenkins_MARKER_5678"}


def _grep_tree(root: Path, needles) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


def test_planted_tokens_reach_no_output_and_not_the_subject(tmp_path, capsys, monkeypatch):
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JENKINS_USER", "bob")
    needles = list(TOKENS.values())
    # the subject: told to print its environment; a variable carries a token into the command
    path = experiment(tmp_path, subject_extra='env = { TINY_PRINT_ENV = "1" }',
                      extra_variables=f'note = "{TOKENS["GITHUB_TOKEN"]}"')
    out = tmp_path / "out"
    code, stdout, stderr = run("run", str(path), "--out", str(out), "--quiet", capsys=capsys)
    assert code == 0, stderr
    log = (out / "work/round-0/instance-1/stdout.log").read_text()
    assert "environment:" in log and "HOME" in log
    assert not [n for n in needles if n in log]  # the subject never got a token
    # a start-up failure quotes the log tail, which holds the token (the subject echoes it)
    failing = experiment(tmp_path, subject_extra='setup = [["{python}", "-c", '
                         '"import sys; print(sys.argv); sys.exit(4)", "{note}"]]',
                         extra_variables=f'note = "{TOKENS["JENKINS_TOKEN"]}"')
    code, stdout2, stderr2 = run("run", str(failing), "--out", str(tmp_path / "out2"),
                                 "--quiet", capsys=capsys)
    assert code == 1 and "exited with code 4" in stderr2 and "***" in stderr2
    # reports from the results, and a Jenkins URL holding credentials
    code, stdout3, stderr3 = run("compare", str(out / "results.json"), str(out / "results.json"),
                                 "--out", str(tmp_path / "report"), capsys=capsys)
    assert code == 0
    monkeypatch.setenv("JENKINS_URL", f"http://bob:{TOKENS['JENKINS_TOKEN']}@127.0.0.1:9/")
    from harness import jenkins
    defaults = list(jenkins.JenkinsService.__init__.__kwdefaults__.items())
    monkeypatch.setattr(jenkins.JenkinsService.__init__, "__kwdefaults__",
                        {**dict(defaults), "backoff": 0.0})  # no waits between the retries
    code, stdout4, stderr4 = run("baseline", "fetch", "--job", "j", "--experiment", "tiny",
                                 "--out", str(tmp_path / "fetch"), "--strict", capsys=capsys)
    assert code == 1
    printed = stdout + stderr + stdout2 + stderr2 + stdout3 + stderr3 + stdout4 + stderr4
    assert not [n for n in needles if n in printed]
    assert not _grep_tree(out, needles)  # results.json (variables), logs: redacted or absent
    assert not _grep_tree(tmp_path / "report", needles)  # reports, verdict
    # the only copies left: the experiment files we wrote, and the setup command's own log
    # (written by that program, which was handed the value on its command line)
    leaks = [f for f in _grep_tree(tmp_path, needles)
             if not f.split(":")[0].endswith(".toml") and "/out2/work/" not in f]
    assert not leaks


# -- 6. daemons, stops, signals -------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="double fork + setsid is POSIX")
def test_a_daemonising_subject_leaves_no_orphan(tmp_path, capsys):
    path = experiment(tmp_path)
    code, _, err = run("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                       "--set", "mode=daemon", capsys=capsys)
    assert code == 0, err
    assert not ours()  # by marker: the daemon left the subject's group and session
    assert not [p for p in tiny_processes() if p.status() != psutil.STATUS_ZOMBIE]  # by command


def test_a_subject_ignoring_sigterm_is_killed_with_a_warning_in_output_and_results(tmp_path,
                                                                                   capsys):
    path = experiment(tmp_path)
    code, _, err = run("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                       "--set", "mode=ignore-term", capsys=capsys)
    assert code == 0
    assert "killed with SIGKILL" in err
    saved = json.loads((tmp_path / "out/results.json").read_text())["rounds"][0]
    assert saved["stop"]["step"] == "SIGKILL" and "SIGTERM" in saved["stop"]["warning"]


def test_a_subject_stopped_over_http_records_the_step(tmp_path, capsys):
    path = experiment(tmp_path, subject_extra='stop = { http = "PUT /shutdown", '
                                              'timeout = "5s" }')
    code, _, err = run("run", str(path), "--out", str(tmp_path / "out"), "--quiet",
                       "--set", "mode=ignore-term", capsys=capsys)
    assert code == 0 and "SIGKILL" not in err
    saved = json.loads((tmp_path / "out/results.json").read_text())["rounds"][0]
    assert saved["stop"]["step"] == "http PUT /shutdown" and "warning" not in saved["stop"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_during_a_run_exits_143_and_leaves_nothing(tmp_path):
    path = experiment(tmp_path, workload=False, scenario="@0:00 sleep 30\n")
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "harness", "run", str(path), "--out",
                              str(out), "--quiet"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(out.glob("work/round-0/instance-1/stdout.log")) or \
            "ready" not in (out / "work/round-0/instance-1/stdout.log").read_text():
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.1)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 143 and "terminated" in err
    assert not (out / "results.json").exists()
    left = [p for p in process.marked(f"{child.pid:08d}", prefix=True)
            if p.status() != psutil.STATUS_ZOMBIE]
    assert not left


# -- 7. advice that fits the situation ------------------------------------------------------------


def test_perf_outside_git_names_what_is_missing(tmp_path, capsys, monkeypatch):
    path = experiment(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run("perf", str(path), "--out", str(tmp_path / "out"), capsys=capsys)
    assert code == 1 and "not in a git checkout" in err and "'HEAD'" not in err
    assert not (tmp_path / "out").exists()


def test_perf_baseline_jenkins_without_url_names_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("JENKINS_URL", raising=False)
    path = experiment(tmp_path)
    code, _, err = run("perf", str(path), "--baseline-jenkins", "job", "--out",
                       str(tmp_path / "out"), capsys=capsys)
    assert code == 1 and "JENKINS_URL is not set" in err and "--jenkins-url" not in err


def test_perf_against_another_experiments_file_refuses_before_any_round(tmp_path, capsys,
                                                                        results):
    save_results(results, tmp_path / "other.json")  # experiment "api-stress"
    path = experiment(tmp_path)
    code, _, err = run("perf", str(path), "--baseline", str(tmp_path / "other.json"), "--out",
                       str(tmp_path / "out"), capsys=capsys)
    assert code == 1 and "holds results of experiment 'api-stress'" in err
    assert "--allow-mismatch" not in err
    assert not (tmp_path / "out").exists()  # no candidate round ran


def test_comparing_two_experiments_does_not_blame_the_environment(tmp_path, capsys, results):
    import dataclasses

    other = dataclasses.replace(results, environment={**results.environment,
                                                      "experiment_hash": "ff" * 32})
    save_results(results, tmp_path / "a.json")
    save_results(other, tmp_path / "b.json")
    code, out, _ = run("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out",
                       str(tmp_path / "report"), capsys=capsys)
    assert "different experiment definitions" in (tmp_path / "report/summary.md").read_text()


def test_labels_name_the_endpoint_once_and_messages_end_with_one_period(tmp_path, capsys,
                                                                          results):
    import dataclasses

    from harness import view
    from harness.compare import compare

    first = compare(results, results).metrics[0]
    m = dataclasses.replace(first, key="instructions_per_request[hello]",
                            metric="instructions_per_request", label="per request [hello]")
    label = view._display_label(m)  # noqa: SLF001
    assert label.count("[hello]") == 1, label
    invalid = dataclasses_replace_invalid(results)
    code, _, _ = run("compare", *invalid(tmp_path), "--out", str(tmp_path / "r"), capsys=capsys)
    assert ".." not in (tmp_path / "r/summary.md").read_text().replace("...", "")


def dataclasses_replace_invalid(results):
    import dataclasses

    def write(tmp_path):
        bad = dataclasses.replace(results, rounds=tuple(
            dataclasses.replace(r, valid=False, invalid_reason="3 of 10 requests failed (30.0% > "
                                "max_error_rate 1.0%); first error: HTTP 500; check the "
                                "subject's logs") for r in results.rounds))
        save_results(results, tmp_path / "a.json")
        save_results(bad, tmp_path / "b.json")
        return str(tmp_path / "a.json"), str(tmp_path / "b.json")
    return write


# -- 8. a fresh machine -----------------------------------------------------------------------


@pytest.mark.parametrize("ci, code", [("", 0), ("true", 1)])
def test_a_missing_system_tool_is_a_skip_with_one_line_or_a_ci_failure(ci, code, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PATH=str(tmp_path), CI=ci)  # no groovy (nor anything else) on PATH
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_pipeline.py", "-k", "groovy_parses"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == code, proc.stdout
    if code == 0:
        assert "1 test(s) skipped for want of groovy: install with `sudo apt-get install " \
               "groovy`" in proc.stdout
    else:
        assert "groovy is not installed, and CI=true" in proc.stdout
