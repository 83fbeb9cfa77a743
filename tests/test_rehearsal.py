"""The rehearsal: the real Jenkinsfile under Groovy with the Declarative DSL stubbed (ci/rehearsal),
real tox-env commands in per-agent workspaces, a stand-in Jenkins (security on) and GitHub.

One session shares the origin repository, the tox shim and the stand-ins; the nightly timer
build runs first and its archived artifacts become build #1 of the stand-in nightly job, which
the pull-request scenarios then compare with. Runs in `tox -e jobs` (PERF_REHEARSAL=1), where
groovy and the project are installed; about three minutes on 2 busy cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.slow, pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("PERF_REHEARSAL") != "1",
                       reason="the rehearsal runs in `tox -e jobs` (set PERF_REHEARSAL=1)"),
    pytest.mark.skipif(shutil.which("groovy") is None,
                       reason="groovy is not installed: apt-get install groovy"),
]

_spec = importlib.util.spec_from_file_location("rehearse", ROOT / "ci" / "rehearse.py")
rehearse = importlib.util.module_from_spec(_spec)
sys.modules["rehearse"] = rehearse
_spec.loader.exec_module(rehearse)

PLATFORMS = ("linux", "windows", "macos")
PHASE1 = "Phase 1: tests and lint / PLATFORM = '{}'"
PHASE3 = "Phase 3: experiment / PLATFORM = '{}' / Experiment"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    with rehearse.Session(tmp_path_factory.mktemp("rehearsal")) as shared:
        yield shared


@pytest.fixture(scope="module")
def nightly(session):
    """The nightly timer build on all three perf agents; its artifacts become build #1."""
    outcome = session.run("nightly", timer=True,
                          agent_list=rehearsal_agents(perf=PLATFORMS))
    assert outcome.crash is None, outcome.crash
    if outcome.result == "SUCCESS":
        session.publish_nightly(outcome, 1, session.commits["m2"])
    return outcome


def rehearsal_agents(perf=("linux",)):
    return rehearse.agents(perf=perf)


def _trusted_only(outcome) -> None:
    """No token is bound while the pull request's own code runs."""
    for step in outcome.commands():
        if step["bound"]:
            assert step["cwd"].startswith(".trusted"), step
            assert step["script"].startswith(("tox -e perf-publish", "tox -e perf-baseline",
                                              "tox -e coverage-baseline")), step


# What a stage's commands may see beyond the OS basics: what Jenkins sets (its own variables,
# the matrix axis, the global properties of docs/jenkins.md), the Jenkinsfile's environment
# directives, and the credentials inside withCredentials.
ALLOWED_ENV = {"BRANCH_NAME", "CHANGE_ID", "CHANGE_TARGET", "GIT_COMMIT", "BUILD_URL",
               "JENKINS_URL", "PLATFORM", "PERF_GITHUB_REPO", "PERF_GITHUB_API",
               "PERF_NIGHTLY_JOB", "PERF_AGENT_WAIT_MINUTES", "PERF_COVERAGE_TOLERANCE",
               "PERF_EXPERIMENT", "PERF_PLATFORM", "JENKINS_USER", "JENKINS_TOKEN",
               "GITHUB_TOKEN"}


def _jenkins_environment_only(outcome) -> None:
    for step in outcome.commands():
        assert set(step["env"]) <= ALLOWED_ENV, step


def _tox_calls(session) -> list[dict]:
    return [json.loads(line) for line in session.record.read_text().splitlines()]


def _final(outcome, platform: str) -> dict:
    finals = [s for s in outcome.statuses
              if s["context"] == f"performance/{platform}" and s["state"] != "pending"]
    assert finals, f"no final status for {platform}: {outcome.statuses}"
    return finals[-1]


def _ends_with_final_statuses(outcome, sha: str) -> dict[str, dict]:
    finals = {p: _final(outcome, p) for p in PLATFORMS}
    assert {s["sha"] for s in outcome.statuses} == {sha}
    for platform, status in finals.items():
        last = [s for s in outcome.statuses if s["context"] == f"performance/{platform}"][-1]
        assert last is status  # nothing pending after the final one
    return finals


def test_nightly_timer_build_archives_a_baseline_per_platform(session, nightly):
    assert nightly.result == "SUCCESS", nightly.text()[-3000:]
    assert all(nightly.stages[PHASE1.format(p)] == "SUCCESS" for p in PLATFORMS)
    assert nightly.stages["Phase 2: coverage"] == "SUCCESS"
    assert all(nightly.stages[PHASE3.format(p)] == "SUCCESS" for p in PLATFORMS)
    for platform in PLATFORMS:
        assert f"perf/{platform}/smoke/results.json" in nightly.archived
    assert "coverage.json" in nightly.archived
    # Phase 2 combined all three platforms' data (not `.coverage.local.*`: defect 1).
    combined = json.loads((nightly.archive_dir / "coverage.json").read_text())
    assert combined["totals"]["percent_covered"] > 0
    # The nightly is not gated against itself, fetches nothing, and posts nothing.
    assert not nightly.commands("coverage-gate") and not nightly.commands("-baseline")
    assert nightly.statuses == []
    # Its timer survives: the Jenkinsfile declares the nightly job's own spec (defect 4).
    triggers = next(s for s in nightly.steps if s["step"] == "triggers")["calls"]
    assert triggers == [{"name": "cron", "args": "[H 2 * * *]"}]
    assert nightly.commands("tox -e py") and any(s["step"] == "bat" for s in nightly.steps)
    _jenkins_environment_only(nightly)
    assert not any(s["bound"] for s in nightly.commands())


def test_pr_without_change_gets_a_verdict_per_platform_on_its_head(session, nightly):
    outcome = session.run("pr-no-change", pr=7, agent_list=rehearsal_agents(perf=PLATFORMS[:2]))
    assert outcome.crash is None, outcome.crash
    assert outcome.result == "UNSTABLE", outcome.text()[-3000:]  # macos: no perf agent
    assert outcome.stages[PHASE3.format("windows")] == "SUCCESS"
    # PR 7 already contains main's tip: no merge commit, HEAD is the PR head (defect 2).
    finals = _ends_with_final_statuses(outcome, session.commits["pr7"])
    for platform in ("linux", "windows"):  # windows: the bat path
        assert finals[platform]["state"] == "success"
        assert finals[platform]["description"].startswith(("pass", "inconclusive"))
    assert finals["macos"]["state"] == "error" and "no agent" in finals["macos"]["description"]
    pending = [s for s in outcome.statuses if s["state"] == "pending"]
    assert {s["context"] for s in pending} == {f"performance/{p}" for p in PLATFORMS}
    gate = outcome.commands("tox -e coverage-gate")
    assert gate and gate[0]["exit"] == 0
    assert "coverage-gate.json" in outcome.archived
    _trusted_only(outcome)
    _jenkins_environment_only(outcome)
    # The PR's own tox envs never saw a token: only the trusted publish step passes GITHUB_TOKEN.
    for call in _tox_calls(session):
        if ".trusted" not in call["root"]:
            assert "GITHUB_TOKEN" not in call["passed"] and "JENKINS_TOKEN" not in call["passed"]
    comments = session.github.comments.get(7, [])
    assert len(comments) == 1  # three platforms, one comment kept up to date


def test_pr_with_a_regression_fails_phase_3_and_posts_failure_on_the_pr_head(session, nightly):
    outcome = session.run("pr-regression", pr=8)
    assert outcome.crash is None, outcome.crash
    assert outcome.result == "FAILURE"
    assert outcome.stages[PHASE3.format("linux")] == "FAILURE"
    # PR 8 branched off m1: the checkout merged main into it; the status goes to HEAD^1.
    finals = _ends_with_final_statuses(outcome, session.commits["pr8"])
    assert finals["linux"]["state"] == "failure"
    assert finals["linux"]["description"].startswith("regression")
    for platform in ("windows", "macos"):  # no perf agent online: reported, not waited for
        assert finals[platform]["state"] == "error"
        assert f"perf && {platform}" in finals[platform]["description"]
        assert outcome.stages[PHASE3.format(platform)] == "UNSTABLE"
    assert "perf-out/linux/report/verdict.json" in outcome.archived
    verdict = json.loads((outcome.archive_dir / "perf-out/linux/report/verdict.json").read_text())
    assert verdict["overall"] == "regression"
    _trusted_only(outcome)


def test_pr_whose_baseline_is_missing_measures_the_candidate_and_says_why(session, nightly):
    session.jenkins.jobs.setdefault("perf-harness-nightly-new", [])
    outcome = session.run("pr-no-baseline", pr=9, nightly_job="perf-harness-nightly-new")
    assert outcome.crash is None, outcome.crash
    assert outcome.result == "UNSTABLE", outcome.text()[-3000:]  # two platforms without agents
    assert outcome.stages[PHASE3.format("linux")] == "SUCCESS"
    assert outcome.stages["Phase 2: coverage"] == "SUCCESS"  # --allow-no-baseline, said so
    assert "no baseline" in outcome.text()
    finals = _ends_with_final_statuses(outcome, session.commits["pr9"])
    assert finals["linux"]["state"] == "success"
    assert finals["linux"]["description"].startswith("no baseline")
    assert "perf-out/linux/candidate/results.json" in outcome.archived
    # The gate lists the PR's own changed files, not main's (merge commit: HEAD^1 is the PR).
    gate = outcome.commands("tox -e coverage-gate")[0]["script"]
    assert gate.endswith("--changed-files harness/units.py")
    _trusted_only(outcome)


def test_a_harness_error_fails_the_build_and_posts_error(session, nightly):
    outcome = session.run("pr-harness-error", pr=10)
    assert outcome.crash is None, outcome.crash
    assert outcome.result == "FAILURE"
    assert outcome.stages[PHASE3.format("linux")] == "FAILURE"
    finals = _ends_with_final_statuses(outcome, session.commits["pr10"])
    assert finals["linux"]["state"] == "error"
    assert "exited 1" in finals["linux"]["description"]
    assert not any(p.endswith("verdict.json") for p in outcome.archived)
    _trusted_only(outcome)


def test_a_github_outage_leaves_the_build_unstable_and_still_ends_with_final_statuses(
        session, nightly):
    session.github.fail_next = [500] * 4  # the first pending status: every try answers 500
    outcome = session.run("pr-github-outage", pr=7)
    session.github.fail_next = []
    assert outcome.crash is None, outcome.crash
    assert outcome.result == "UNSTABLE"
    assert "answered 500" in outcome.text() and "githubstatus" in outcome.text()
    assert "could not be reached" not in outcome.text()
    finals = _ends_with_final_statuses(outcome, session.commits["pr7"])
    assert finals["linux"]["state"] == "success"


def test_an_aborted_build_runs_the_final_feedback(session, nightly):
    outcome = session.run("pr-aborted", pr=7, abort_on="tox -e perf-ci")
    assert outcome.crash is None, outcome.crash
    assert outcome.result == "ABORTED"
    assert outcome.stages[PHASE3.format("linux")] == "ABORTED"
    finals = _ends_with_final_statuses(outcome, session.commits["pr7"])
    assert finals["linux"]["state"] == "error"
    assert "ABORTED" in finals["linux"]["description"]
    assert not any(p.endswith("verdict.json") for p in outcome.archived)
