"""harness.bisect: the search, the log, and a real bisection of a git history under valgrind."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import bisect, valgrind
from harness.bisect import BisectLog, Measurement, search
from harness.cli import main
from harness.compare import compare
from harness.errors import ConfigError
from harness.results import ExperimentInfo, Results, Round
from harness.worktree import Checkout

DATA = Path(__file__).resolve().parent / "data"
needs_valgrind = pytest.mark.skipif(valgrind.unavailable_reason() is not None,
                                    reason=str(valgrind.unavailable_reason()))


def _measure(commit: str, verdict: str) -> Measurement:
    return Measurement(commit=commit, evidence="instructions", verdict=verdict,  # type: ignore[arg-type]
                       overall="regression" if verdict == "bad" else "pass",
                       values={"k": {"good": 100.0, "value": 120.0 if verdict == "bad" else 100.0,
                                     "change": 0.2 if verdict == "bad" else 0.0,
                                     "verdict": "regression" if verdict == "bad" else "unchanged"}},
                       reason="", seconds=1.0)


def _judge(first_bad: int, commits: list[str], calls: list[str]):
    def judge(commit: str) -> Measurement:
        calls.append(commit)
        return _measure(commit, "bad" if commits.index(commit) >= first_bad else "good")
    return judge


@pytest.mark.parametrize("first_bad", range(8))
def test_search_names_the_first_bad_commit_in_log2_steps(first_bad):
    commits = [f"c{i}" for i in range(8)]
    calls: list[str] = []
    index, order, why = search(commits, _judge(first_bad, commits, calls), {})
    assert index == first_bad and why == "found"
    assert calls[0] == "c7" and len(calls) == 4  # BAD, then log2(8) = 3 steps
    assert [m.commit for m in order] == calls


def test_search_takes_known_steps_from_the_log():
    commits = [f"c{i}" for i in range(8)]
    known = {"c7": _measure("c7", "bad"), "c3": _measure("c3", "good")}
    calls: list[str] = []
    index, order, _ = search(commits, _judge(5, commits, calls), known)
    assert index == 5 and calls == ["c5", "c4"]
    assert [m.commit for m in order] == ["c7", "c3", "c5", "c4"]


def test_search_stops_when_bad_is_not_bad_or_a_step_cannot_decide():
    commits = ["a", "b", "c", "d"]
    index, _, why = search(commits, lambda c: _measure(c, "good"), {})
    assert index is None and "nothing to bisect" in why

    def judge(commit: str) -> Measurement:
        return _measure(commit, {"d": "bad", "b": "inconclusive"}.get(commit, "good"))
    index, _, why = search(commits, judge, {})
    assert index is None and "after GOOD and at or before d" in why


def test_log_keeps_finished_steps_and_ignores_a_torn_last_line(tmp_path):
    journal = BisectLog(tmp_path / "bisect-log.jsonl")
    journal.append({"type": "start", "log_version": 1, "good": "g"})
    journal.append({"type": "step", "measurement": _measure("c1", "bad").to_json()})
    with open(journal.path, "a", encoding="utf-8") as handle:
        handle.write('{"type": "step", "measurement": {"comm')
    start, reference, steps = journal.read()
    assert start is not None and start["good"] == "g" and reference is None
    assert steps == [_measure("c1", "bad")]


# ---------------------------------------------------------------------------------------------
# A real bisection: a git history of a tiny subject, one slowing commit among eight.

EXPERIMENT = """\
description = "GET /work of a tiny subject, judged on instructions per request"
[subject]
command = ["{python}", "app.py", "--port", "{port}"]
ready = { http = "/health", timeout = "30s" }
[workload]
rate = "5/s"
requests = 5
[[workload.endpoints]]
name = "work"
path = "/work"
[instructions]
enabled = true
requests = 10
"""
SLOW = 5  # the commit (1-based, after GOOD) that raises ITERATIONS


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def history_repo(tmp_path, monkeypatch) -> tuple[Path, list[str]]:
    """GOOD, then eight commits; commit SLOW makes /work 20% more expensive."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@localhost")
    _git(repo, "config", "user.name", "t")
    shutil.copy(DATA / "bisect_app.py", repo / "app.py")
    (repo / "tiny.toml").write_text(EXPERIMENT)
    (repo / "NOTES.md").write_text("notes\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "good")
    commits = [_git(repo, "rev-parse", "HEAD")]
    for number in range(1, 9):
        if number == SLOW:
            app = repo / "app.py"
            app.write_text(app.read_text().replace("ITERATIONS = 2000", "ITERATIONS = 2400"))
            message = "work: more iterations per request"
        else:
            with open(repo / "NOTES.md", "a", encoding="utf-8") as notes:
                notes.write(f"change {number}\n")
            message = f"notes {number}"
        _git(repo, "commit", "-q", "-am", message)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    monkeypatch.chdir(repo)
    return repo, commits


@needs_valgrind
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(420)  # minutes only on a machine loaded several times over
def test_bisect_names_the_slowing_commit_from_instructions_and_resumes(history_repo, tmp_path):
    repo, commits = history_repo
    out = tmp_path / "out"
    lines: list[str] = []

    def interrupt_at_first_midpoint(line: str) -> None:
        lines.append(line)
        if line.startswith("instruction counts under valgrind") and len(
                [x for x in lines if x.startswith("instruction counts")]) == 3:
            raise KeyboardInterrupt  # Ctrl-C after GOOD and BAD were measured

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        bisect.run_bisect(good=commits[0], bad=commits[-1], experiment_path=repo / "tiny.toml",
                          out_dir=out, log=interrupt_at_first_midpoint)
    assert any("run the same command again to resume" in x for x in lines)
    kinds = [json.loads(x)["type"] for x in (out / "bisect-log.jsonl").read_text().splitlines()]
    assert kinds == ["start", "reference", "step"]

    counted: list[str] = []
    outcome = bisect.run_bisect(good=commits[0], bad=commits[-1],
                                experiment_path=repo / "tiny.toml", out_dir=out,
                                log=counted.append)
    elapsed = time.monotonic() - started
    assert outcome.first_bad == commits[SLOW], outcome.headline
    assert outcome.evidence == "instructions" and outcome.exit_code == 2
    assert outcome.resumed == 1 and len(outcome.steps) == 4  # BAD + log2(8) midpoints
    assert sum(x.startswith("instruction counts") for x in counted) == 3  # GOOD, BAD not redone
    (key,) = outcome.keys
    assert key == "instructions_per_request[work]"
    assert 0.1 < outcome.change[key]["change"] < 0.3  # against its parent, measured
    assert outcome.subject == "work: more iterations per request"
    for step in outcome.steps:
        expected = "bad" if commits.index(step.commit) >= SLOW else "good"
        assert step.verdict == expected
    report = (out / "bisect.md").read_text()
    assert commits[SLOW][:12] in report and "First bad commit" in report
    assert f"`{commits[SLOW][:12]}` work: more iterations per request | 5/8 | bad" in report
    assert json.loads((out / "bisect.json").read_text())["first_bad"] == commits[SLOW]
    print(f"bisect of 8 commits on instructions: {elapsed:.1f} s")
    assert not list((out / "work" / "cache").glob("baseline-*"))  # worktrees removed

    # A third run takes every step from the log: no valgrind at all, the same answer.
    code = main(["bisect", commits[0], commits[-1], str(repo / "tiny.toml"), "--out", str(out)])
    assert code == 2
    steps = bisect.BisectLog(out / "bisect-log.jsonl").read()[2]
    assert [m.commit for m in steps] == [m.commit for m in outcome.steps]  # nothing measured again


@pytest.mark.integration
def test_a_log_of_another_bisection_is_refused(history_repo, tmp_path):
    repo, commits = history_repo
    out = tmp_path / "out"
    BisectLog(out / "bisect-log.jsonl").append(
        {"type": "start", "log_version": 1, "good": "0" * 40, "bad": commits[-1]})
    with pytest.raises(ConfigError, match="another bisection"):
        bisect.run_bisect(good=commits[0], bad=commits[-1], experiment_path=repo / "tiny.toml",
                          out_dir=out)


@pytest.mark.integration
def test_good_must_be_an_ancestor_of_bad(history_repo, tmp_path):
    repo, commits = history_repo
    with pytest.raises(ConfigError, match="not an ancestor"):
        bisect.run_bisect(good=commits[-1], bad=commits[0], experiment_path=repo / "tiny.toml",
                          out_dir=tmp_path / "out")


PEER_EXPERIMENT = """\
description = "the reference peer, 5 channels, judged on instructions per /channels request"
[subject]
command = ["{python}", "-m", "subjects.peer", "serve", "--state-dir", "{state_dir}",
           "--port", "{port}", "--db", "worker", "--sync-interval", "0"]
setup = [["{python}", "-m", "subjects.peer", "seed", "--state-dir", "{state_dir}",
          "--channels", "5", "--torrents", "10", "--seed", "0"]]
ready = { http = "/health", timeout = "60s" }
requirements = ["subjects/peer/requirements.txt"]  # each commit's environment is built from it
[workload]
rate = "5/s"
requests = 5
[[workload.endpoints]]
name = "channels"
path = "/channels"
[instructions]
enabled = true
requests = 5
"""


@needs_valgrind
@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_bisect_of_the_reference_peer(tmp_path, monkeypatch):
    """The issue's own case: the reference peer, one commit among eight slows /channels."""
    root = Path(__file__).resolve().parent.parent
    repo = tmp_path / "repo"
    shutil.copytree(root / "subjects", repo / "subjects",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "peer.toml").write_text(PEER_EXPERIMENT)
    (repo / "NOTES.md").write_text("notes\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@localhost")
    _git(repo, "config", "user.name", "t")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "good")
    commits = [_git(repo, "rev-parse", "HEAD")]
    tuning = repo / "subjects" / "peer" / "tuning.py"
    for number in range(1, 9):
        if number == SLOW:
            tuning.write_text(tuning.read_text().replace("CHANNELS_EXTRA_WORK = 0",
                                                         "CHANNELS_EXTRA_WORK = 100"))
        else:
            with open(repo / "NOTES.md", "a", encoding="utf-8") as notes:
                notes.write(f"change {number}\n")
        _git(repo, "commit", "-q", "-am", f"commit {number}")
        commits.append(_git(repo, "rev-parse", "HEAD"))
    monkeypatch.chdir(repo)
    started = time.monotonic()
    outcome = bisect.run_bisect(good=commits[0], bad=commits[-1],
                                experiment_path=repo / "peer.toml", out_dir=tmp_path / "out",
                                log=lambda line: None)
    print(f"bisect of the peer over 8 commits: {time.monotonic() - started:.1f} s")
    assert outcome.first_bad == commits[SLOW] and outcome.evidence == "instructions"


def _timing_results(label: str, latency: float) -> Results:
    rounds = tuple(Round(index=i, side=label, instance=1, step=None, started_at="t",
                         duration=10.0, summary={"latency_mean": latency * (1 + 0.002 * i),
                                                 "errors": 0.0})
                   for i in range(6))
    return Results(label=label, experiment=ExperimentInfo(name="tiny", path="tiny.toml",
                                                          sha256="0" * 64),
                   environment={"platform": "linux"}, rounds=rounds, created_at="t")


@pytest.mark.integration
def test_without_an_instruction_regression_the_steps_are_timing_sessions(history_repo, tmp_path,
                                                                          monkeypatch):
    """The orchestration on timing: sessions stand in for real rounds (their own tests run them)."""
    repo, commits = history_repo
    (repo / "tiny.toml").write_text(EXPERIMENT.replace("enabled = true", "enabled = false"))
    sessions: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def checkout(root, ref, *, cache=None, spec=None):
        yield Checkout(root=Path(root), commit=ref, python=sys.executable)

    def session(sides, **kwargs):
        good, other = sides
        sessions.append((good.label, other.label))
        slow = commits.index(other.checkout.commit) >= SLOW
        baseline, candidate = _timing_results("good", 0.010), _timing_results(
            other.label, 0.013 if slow else 0.010)
        return baseline, candidate, compare(baseline, candidate), "settled after 6 pairs"

    monkeypatch.setattr(bisect, "baseline_checkout", checkout)
    monkeypatch.setattr(bisect, "run_session", session)
    outcome = bisect.run_bisect(good=commits[0], bad=commits[-1],
                                experiment_path=repo / "tiny.toml", out_dir=tmp_path / "out",
                                log=lambda line: None)
    assert outcome.first_bad == commits[SLOW] and outcome.evidence == "timing"
    assert outcome.keys == ("latency_mean",)
    assert len(sessions) == 4 and all(good == "good" for good, _ in sessions)  # GOOD every step
    assert outcome.change["latency_mean"]["change"] == pytest.approx(0.3, abs=0.01)
