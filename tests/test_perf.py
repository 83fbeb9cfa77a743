"""`harness perf`: the interleaving order, and end to end on the reference subject in a clone."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import perf
from harness.perf import pair_order

ROOT = Path(__file__).resolve().parents[1]

# A short experiment on the reference subject, so a whole perf session takes well under a minute.
QUICK = """\
name = "quick"
description = "GET /channels on a small seeded peer, for the perf tests"

[variables]
db = "worker"

[subject]
command = ["{python}", "-m", "subjects.peer", "serve", "--state-dir", "{state_dir}",
           "--port", "{port}", "--db", "{db}", "--sync-interval", "0"]
setup = [["{python}", "-m", "subjects.peer", "seed", "--state-dir", "{state_dir}",
          "--channels", "200", "--torrents", "2000"]]
ready = { http = "/health", timeout = "60s" }
requirements = ["subjects/peer/requirements.txt"]
# counts/sitecustomize.py writes the subject's imported-module count and RSS (the A/A test)
env = { PYTHONPATH = "{experiment_dir}/counts", PERF_TEST_COUNTS = "{out_dir}/counts.txt" }

[workload]
rate = "20/s"
requests = 40
warmup = "1s"

[[workload.endpoints]]
name = "channels"
path = "/channels"

[rounds]
perf_min = 8           # one-sided exact paired test: 6 pairs cannot go below p = 1/64
perf_budget = "3m"

[metrics.latency_mean]
gate = true
min_change = "20%"

[metrics.cpu_per_request]
gate = true
min_change = "20%"
"""


# Started in every Python process of the subject: writes "modules rss_kib" a few times a second,
# so the file holds the figures of the process' last moments.
COUNTS = """\
import os, sys, threading, time

def _write():
    path = os.environ.get("PERF_TEST_COUNTS")
    while path:
        try:
            with open("/proc/self/status") as status:
                rss = [l.split()[1] for l in status if l.startswith("VmRSS:")][0]
        except OSError:
            rss = "0"
        with open(path + ".tmp", "w") as out:
            out.write(f"{len(sys.modules)} {rss}\\n")
        os.replace(path + ".tmp", path)
        time.sleep(0.2)

threading.Thread(target=_write, daemon=True).start()
"""


def test_pair_order_is_seeded_and_balanced():
    rng = random.Random(7)
    orders = [pair_order(rng, ("baseline", "candidate")) for _ in range(400)]
    firsts = sum(1 for o in orders if o[0] == "baseline")
    assert 150 < firsts < 250  # both orders occur about equally often
    again = random.Random(7)
    assert orders == [pair_order(again, ("baseline", "candidate")) for _ in range(400)]


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A scratch clone of this project's committed tree, plus the quick experiment, committed."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the project")
    target = tmp_path_factory.mktemp("clone") / "project"
    _git(ROOT, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target))
    # The working tree under test may hold changes not committed yet: copy what the test needs.
    for part in ("harness", "subjects", "templates", "experiments"):
        shutil.copytree(ROOT / part, target / part, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (target / "experiments" / "quick.toml").write_text(QUICK)
    (target / "experiments" / "counts").mkdir()
    (target / "experiments" / "counts" / "sitecustomize.py").write_text(COUNTS)
    _git(target, "add", "-A")
    _git(target, "commit", "--quiet", "--allow-empty", "-m", "quick experiment")
    return target


def _perf(clone: Path, out: Path, *args: str) -> tuple[int, dict]:
    code, verdict, _ = _perf_run(clone, out, *args)
    return code, verdict


def _perf_run(clone: Path, out: Path, *args: str,
              experiment: str = "experiments/quick.toml") -> tuple[int, dict, str]:
    """harness perf in the clone: its exit code, verdict.json and what it printed."""
    proc = subprocess.run(
        # a budget shorter than the first pairs: one look after perf_min pairs, none added
        [sys.executable, "-m", "harness", "perf", experiment, "--out", str(out),
         "--seed", "1", "--budget", "30s", *args],
        cwd=clone, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": str(clone)},
    )
    verdict = out / "verdict.json"
    assert verdict.exists(), proc.stdout + proc.stderr
    assert (out / "report.html").exists()
    return proc.returncode, json.loads(verdict.read_text()), proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_same_code_is_not_a_regression(clone, tmp_path):
    code, verdict = _perf(clone, tmp_path / "aa", "--baseline-ref", "HEAD")
    assert code == 0, verdict
    assert verdict["overall"] in ("pass", "inconclusive")
    report = (tmp_path / "aa" / "report.html").read_text()
    assert "baseline" in report and "candidate" in report
    # Both sides are built and started the same way: the same modules, the same memory.
    counts = {side: _counts(tmp_path / "aa", side) for side in ("baseline", "candidate")}
    assert counts["baseline"]["modules"] == counts["candidate"]["modules"], counts
    rss = [counts[side]["rss"] for side in counts]
    assert abs(rss[0] - rss[1]) <= 0.01 * max(rss), counts
    envs = [json.loads((tmp_path / "aa" / side / "results.json").read_text())
            ["session"]["code"]["environment"] for side in counts]
    assert envs[0]["packages"] == envs[1]["packages"] and "aiohttp" in envs[0]["packages"]
    assert envs[0]["python"] != sys.executable  # the harness' own environment is not shared


def _counts(out: Path, side: str) -> dict:
    """Median over rounds of the served process' imported modules and RSS at its end."""
    rows = [tuple(map(int, path.read_text().split()))
            for path in sorted((out / "work").glob(f"round-*-{side}/**/counts.txt"))]
    assert rows, f"no counts written for {side}"
    modules = sorted(r[0] for r in rows)
    rss = sorted(r[1] for r in rows)
    return {"modules": modules[len(rows) // 2], "rss": rss[len(rows) // 2], "rows": rows}


@pytest.mark.slow
@pytest.mark.integration
def test_slower_channels_handler_fails_with_exit_2(clone, tmp_path):
    tuning = clone / "subjects" / "peer" / "tuning.py"
    text = tuning.read_text()
    assert "CHANNELS_EXTRA_WORK = 0" in text
    # about 20 ms more CPU per request (0.3 us per iteration): /channels costs a few times more
    tuning.write_text(text.replace("CHANNELS_EXTRA_WORK = 0", "CHANNELS_EXTRA_WORK = 60_000"))
    _git(clone, "commit", "--quiet", "-am", "slow /channels down on purpose")
    try:
        code, verdict = _perf(clone, tmp_path / "slow", "--baseline-ref", "HEAD~1")
    finally:
        _git(clone, "reset", "--quiet", "--hard", "HEAD~1")
    flagged = {m["key"] for m in verdict["metrics"] if m["verdict"] == "regression"}
    assert code == 2, verdict
    assert flagged & {"latency_mean", "cpu_per_request"}, flagged


def _variant(clone: Path, name: str, workload: str) -> str:
    """experiments/NAME.toml: the quick experiment with more [workload] keys, left uncommitted
    (perf reads the experiment once, from this tree, for both sides)."""
    text = QUICK.replace('warmup = "1s"\n', f'warmup = "1s"\n{workload}\n')
    (clone / "experiments" / f"{name}.toml").write_text(text)
    return f"experiments/{name}.toml"


@pytest.mark.slow
@pytest.mark.integration
def test_a_candidate_that_collapses_under_the_rate_fails_with_exit_2_and_the_numbers(clone,
                                                                                    tmp_path):
    """Overload is the change's result, not the harness' fault: about 0.2 s of CPU per request
    against 50 ms between requests, each with 1 s to be answered. The candidate's queue grows
    until most requests time out; the baseline answers every one."""
    experiment = _variant(clone, "collapse", 'timeout = "1s"')
    tuning = clone / "subjects" / "peer" / "tuning.py"
    tuning.write_text(tuning.read_text().replace("CHANNELS_EXTRA_WORK = 0",
                                                 "CHANNELS_EXTRA_WORK = 600_000"))
    _git(clone, "commit", "--quiet", "-m", "make /channels far too slow for the rate",
         str(tuning.relative_to(clone)))
    try:
        code, verdict, printed = _perf_run(clone, tmp_path / "collapse", "--baseline-ref",
                                           "HEAD~1", experiment=experiment)
    finally:
        _git(clone, "reset", "--quiet", "--hard", "HEAD~1")
        (clone / experiment).unlink()
    assert code == 2 and verdict["overall"] == "regression", printed
    match = re.search(r"the candidate timed out on (\d+) of (\d+) requests; the baseline on 0 "
                      r"of (\d+)", verdict["headline"])
    assert match, verdict["headline"]
    assert int(match[1]) > 0.03 * int(match[2])  # beyond the experiment's error limit
    assert "could not sustain the rate" in printed
    # what the overloaded candidate could not measure is not an open gate of its own
    assert not any("one side only" in reason for reason in verdict["reasons"]), verdict["reasons"]
    # the candidate's numbers at the rate it failed are in the report, beside the baseline's;
    # what it could not measure (no answered request: no latency) is one line, not one each
    cpu = next(m for m in verdict["metrics"] if m["key"] == "cpu_per_request")
    assert cpu["change"] > 1.0, cpu
    one_sided = [w for w in verdict["warnings"] if "measured only in" in w]
    assert len(one_sided) <= 1, one_sided


@pytest.mark.slow
@pytest.mark.integration
def test_a_load_driver_starved_beside_an_idle_subject_is_invalid_with_exit_1(clone, tmp_path):
    """The harness' own failure: a schedule lag limit no driver can keep (1 us) makes every round
    lag while the subject idles. Two such rounds are run again, the third stays, and the session
    ends invalid at once (exit 1), naming the driver, not the candidate."""
    experiment = _variant(clone, "starved", 'max_lag = "0.001ms"')
    out = tmp_path / "starved"
    try:
        code, verdict, printed = _perf_run(clone, out, "--baseline-ref", "HEAD",
                                           experiment=experiment)
    finally:
        (clone / experiment).unlink()
    assert code == 1 and verdict["overall"] == "invalid", printed
    assert "fell behind" in verdict["headline"], verdict["headline"]
    results = json.loads((out / "baseline" / "results.json").read_text())
    reruns = results["session"]["reruns"]
    assert len(reruns) == perf.RERUNS and all(r.startswith("load driver: ") for r in reruns)


@pytest.mark.slow
@pytest.mark.integration
def test_artifact_timing_regression_not_reproduced_on_this_agent_does_not_fail(clone, tmp_path):
    """A nightly measured on a faster day flags timing; the same-agent re-run clears it."""
    nightly = tmp_path / "nightly"
    subprocess.run(
        [sys.executable, "-m", "harness", "run", "experiments/quick.toml", "--out", str(nightly),
         "--label", "baseline", "--rounds", "6", "--quiet"],
        cwd=clone, check=True, capture_output=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(clone)},
    )
    data = json.loads((nightly / "results.json").read_text())
    for entry in data["rounds"]:  # that night the machine was twice as fast
        for key in ("latency_mean", "cpu_per_request"):
            entry["summary"][key] *= 0.5
    data["environment"]["subject_commit"] = _git(clone, "rev-parse", "HEAD").strip()
    (nightly / "results.json").write_text(json.dumps(data))

    code, verdict = _perf(clone, tmp_path / "confirm", "--baseline",
                          str(nightly / "results.json"))
    assert code == 0, verdict
    assert verdict["overall"] in ("pass", "inconclusive")
    reasons = " ".join(verdict["reasons"])
    assert "re-run interleaved" in reasons and "that session decides" in reasons, reasons


# --- the sequential plan (pure: no processes) ---------------------------------------------------


def test_the_plan_comes_from_the_budget_and_spends_alpha_across_its_looks():
    plan = perf.plan_pairs(6, pair_seconds=30.0, remaining=185.0)
    assert (plan.first, plan.planned) == (6, 12)
    assert perf.plan_pairs(6, pair_seconds=30.0, remaining=-5.0).planned == 6
    assert perf.plan_pairs(6, pair_seconds=1.0, remaining=1e6).planned == perf.MAX_PAIRS
    designs = [plan.design(n) for n in range(6, 13)]
    assert [d.look for d in designs] == list(range(1, 8)) and designs[-1].planned == 7
    assert sum(d.level for d in designs) > 0.01 > designs[-1].level > designs[0].level


def test_merged_instruction_runs_keep_a_number_and_list_every_run():
    run = {"min_change": 0.01, "endpoints": {"channels": {"per_request": 100.0, "non_2xx": 0}}}
    second = {"endpoints": {"channels": {"per_request": 101.0}}}
    merged = perf.merge_instruction_runs([run, second, None])
    assert merged["endpoints"]["channels"]["per_request"] == 100.0
    assert merged["endpoints"]["channels"]["per_request_runs"] == [100.0, 101.0]
    assert merged["runs"] == 2 and merged["min_change"] == 0.01
    assert perf.merge_instruction_runs([None]) is None


class FakeTier:
    """InstructionTier's interface: per run one count per endpoint; the first run also
    measures the 0-request count, later ones share it."""

    calls: list[tuple[str, str]] = []

    def __init__(self, experiment, *, work_dir, project_root, python):
        self.name, self.runs, self.last_busy_seconds = work_dir.name, 0, 30.0

    def run(self):
        self.runs += 1
        FakeTier.calls.append((self.name, "first" if self.runs == 1 else "again"))
        return {"idle": "measured" if self.runs == 1 else "shared",
                "endpoints": {"channels": {"per_request": 100.0 + len(FakeTier.calls)}}}


def test_side_by_side_returns_every_result_by_key_and_raises_the_first_failure():
    assert perf.side_by_side({"a": lambda: 1, "b": lambda: 2}) == {"a": 1, "b": 2}
    assert perf.side_by_side({"only": lambda: 3}) == {"only": 3}

    def fails():
        raise RuntimeError("the subject died under valgrind")

    import threading

    asked = threading.Event()
    with pytest.raises(RuntimeError, match="died"):  # raised while "a" still runs: not after it
        perf.side_by_side({"a": lambda: asked.wait(timeout=60), "b": fails},
                          on_interrupt=asked.set)
    assert asked.is_set()  # the other jobs are asked to start no further subject


def _fake_sides(tmp_path):
    from types import SimpleNamespace

    experiment = SimpleNamespace(instructions=SimpleNamespace(enabled=True), workload=None)
    return tuple(perf.Side(label, experiment, SimpleNamespace(root=tmp_path, python="python"))
                 for label in ("baseline", "candidate"))


def test_the_second_instruction_run_is_skipped_when_it_would_eat_the_rounds_budget(monkeypatch,
                                                                                   tmp_path):
    monkeypatch.setattr(perf, "InstructionTier", FakeTier)
    monkeypatch.setattr(perf, "run_function_profile", lambda experiment, **kwargs: None)
    sides = _fake_sides(tmp_path)
    FakeTier.calls = []
    roomy = perf.Session(sides, work_dir=tmp_path, seed=1, log=lambda line: None)
    roomy.count_instructions(time_left=lambda: 1e6)
    # one tier per side, both sides side by side: its second run only repeats the N-request runs
    assert sorted(FakeTier.calls[:2]) == [("instructions-baseline", "first"),
                                          ("instructions-candidate", "first")]
    assert sorted(FakeTier.calls[2:]) == [("instructions-baseline", "again"),
                                          ("instructions-candidate", "again")]
    counts = roomy.instructions["baseline"]["endpoints"]["channels"]["per_request_runs"]
    assert len(counts) == 2 and counts[0] in (101.0, 102.0) and counts[1] in (103.0, 104.0)
    FakeTier.calls = []
    tight = perf.Session(sides, work_dir=tmp_path, seed=1, log=lambda line: None)
    tight.count_instructions(time_left=lambda: 50.0)  # another run: 30 s > half of 50 s
    assert len(FakeTier.calls) == 2 and tight.instructions["candidate"]["runs"] == 1


def test_progress_lines_say_the_round_of_the_planned_ones_and_the_time_left(tmp_path):
    session = perf.Session(_fake_sides(tmp_path), work_dir=tmp_path, seed=1, log=print)
    session.planned_pairs = 8
    first = session.progress_line(1, 1, "first look after 8", "baseline", None)
    assert first == ("round 1 of 16: baseline (pair 1 of 8, first look after 8); "
                     "time left known after the first round")
    session.round_seconds = [12.0, 12.0, 11.0, 13.0]
    assert session.progress_line(5, 3, "", "candidate", None) == (
        "round 5 of 16: candidate (pair 3 of 8); about 2 min 20 s left")  # 12 rounds x 12 s


def _metric(kind, verdict, gate=True):
    from types import SimpleNamespace

    return SimpleNamespace(kind=kind, verdict=verdict, gate=gate)


def test_an_exact_regression_ends_the_session_before_the_first_look_and_timing_does_not():
    from types import SimpleNamespace

    def comparison(overall, *metrics, overload=None):
        return SimpleNamespace(overall=overall, metrics=metrics, details={
            "statistics": {"overload": {"regression": overload}}})

    assert perf.decided_exactly(comparison("regression", _metric("counter", "regression"),
                                           _metric("timing", "inconclusive")))
    assert perf.decided_exactly(comparison("regression", _metric("instructions", "regression")))
    # timing alone, an ungated counter, or an invalid session: keep going to the planned looks
    assert not perf.decided_exactly(comparison("regression", _metric("timing", "regression"),
                                               _metric("counter", "unchanged")))
    assert not perf.decided_exactly(comparison("inconclusive",
                                               _metric("counter", "regression", gate=False)))
    assert not perf.decided_exactly(comparison("invalid", _metric("counter", "regression")))
    # the candidate could not sustain the rate, by the exact tests on its failed requests
    assert perf.decided_exactly(comparison("regression", _metric("timing", "inconclusive"),
                                           overload="the candidate timed out on 80 of 80"))


def test_checks_before_the_first_look_cannot_decide_timing():
    """Timing at an early check is tested at a level no exact test on fewer pairs reaches:
    those checks spend none of the plan's alpha (sign-flip p >= 2**-pairs)."""
    design = perf.early_design(8)
    assert design.look is None and design.level < 2.0 ** -16
    assert design.level <= min(perf.Plan(8, planned).design(8).level for planned in (8, 12, 40))




def test_the_session_stops_at_the_pair_after_which_an_exact_gate_failed(monkeypatch, tmp_path):
    from types import SimpleNamespace

    looks = []

    def run_pair(self, planned=""):
        self.pair_seconds.append(10.0)

    def judged(baseline, candidate, design):
        pairs = len(looks) + 1
        looks.append(design)
        exact = "regression" if pairs >= 3 else "unchanged"
        return SimpleNamespace(overall="regression" if pairs >= 3 else "inconclusive",
                               metrics=(_metric("counter", exact),
                                        _metric("timing", "inconclusive")))

    monkeypatch.setattr(perf.Session, "count_instructions", lambda self, time_left: None)
    monkeypatch.setattr(perf.Session, "run_pair", run_pair)
    monkeypatch.setattr(perf.Session, "results", lambda self, label, extra: extra)
    monkeypatch.setattr(perf, "compare", judged)
    *_, stop = perf.run_session(_fake_sides(tmp_path), pairs=8, budget=300.0, seed=1,
                                work_dir=tmp_path, started=0.0, log=lambda line: None)
    assert len(looks) == 3 and all(design.look is None for design in looks)
    assert stop.startswith("the exact evidence decided a regression after 3 pair(s), before the "
                           "first look at 8")


def test_a_round_whose_driver_lagged_beside_an_idle_subject_runs_again_and_keeps_its_pair(
        monkeypatch, tmp_path):
    from harness.results import Round

    lag = "the load driver fell behind its schedule: p99 schedule lag 53.2 ms > max_lag 50.0 ms"
    lagging = {2, 5, 6}  # calls whose driver lags (the third would exceed perf.RERUNS)

    def run_round(experiment, *, index, side, step, work_dir, project_root, python):
        bad = index in lagging
        return [Round(index=index, side=side, instance=1, step=step, started_at="", duration=5.0,
                      valid=not bad, invalid_reason=lag if bad else None,
                      summary={"cpu_seconds": 0.1, "errors": 0.0})]

    monkeypatch.setattr(perf, "run_round", run_round)
    monkeypatch.setattr(perf, "rate_steps", lambda experiment: [None])
    logged = []
    session = perf.Session(_fake_sides(tmp_path), work_dir=tmp_path, seed=1, log=logged.append)
    for _ in range(3):
        session.run_pair()
    # rounds 2 and 5 were left out and run again (as 3 and 6); 6 lagged too and, with no re-run
    # left, stays in the session as it is for the verdict to judge
    kept = sorted(r.index for side in session.rounds.values() for r in side)
    assert kept == [0, 1, 3, 4, 6, 7] and len(session.order) == 8
    assert all(len(side) == 3 for side in session.rounds.values())  # every pair still whole
    assert len(session.reruns) == perf.RERUNS == 2
    assert session.reruns[0].startswith("load driver: ") and "round 2 was left out" in \
        session.reruns[0] and "53.2 ms" in session.reruns[0]
    assert any("run again" in line for line in logged)
    numbers = [line.split(" of ")[0] for line in logged if line.startswith("round ")]
    assert numbers == ["round 1", "round 2", "round 3", "round 3", "round 4", "round 5",
                       "round 5", "round 6"]  # a re-run is counted in its round's place
    label = next(r.side for side in session.rounds.values() for r in side if r.index == 3)
    other = next(side for side in session.labels if side != label)
    assert session.reruns[0] in session.reruns_of(label)  # the warning goes with its side
    assert session.reruns[0] not in session.reruns_of(other)


def test_an_invalid_comparison_ends_the_session_at_once_it_cannot_be_mended(monkeypatch, tmp_path):
    from types import SimpleNamespace

    looks = []

    def run_pair(self, planned=""):
        self.pair_seconds.append(10.0)

    def judged(baseline, candidate, design):
        looks.append(design)
        return SimpleNamespace(overall="invalid" if len(looks) >= 2 else "inconclusive",
                               metrics=(_metric("counter", "unchanged"),))

    monkeypatch.setattr(perf.Session, "count_instructions", lambda self, time_left: None)
    monkeypatch.setattr(perf.Session, "run_pair", run_pair)
    monkeypatch.setattr(perf.Session, "results", lambda self, label, extra: extra)
    monkeypatch.setattr(perf, "compare", judged)
    *_, comparison, stop = perf.run_session(_fake_sides(tmp_path), pairs=8, budget=300.0, seed=1,
                                            work_dir=tmp_path, started=0.0, log=lambda line: None)
    assert comparison.overall == "invalid" and len(looks) == 2
    assert stop == ("invalid after 2 pair(s), before the first look at 8: more pairs cannot mend "
                    "what made it so")
