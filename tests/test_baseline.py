"""harness.baseline: choosing and downloading the nightly baseline from a stand-in Jenkins."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from harness.baseline import fetch_baseline, load_record
from harness.errors import ServiceError
from harness.jenkins import JenkinsService
from tests.fakes.jenkins_server import FakeBuild, FakeJenkins

pytestmark = pytest.mark.integration
JOB = "perf-harness-nightly"
NOW = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
ARTIFACT = "perf/linux/api-stress/results.json"


def _ms(days_ago: float) -> int:
    return int((NOW - timedelta(days=days_ago)).timestamp() * 1000)


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> dict[str, str]:
    """main: m1 -> m2 -> m3; the PR branches off m2 (so m3 is not its ancestor)."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "t@localhost")
    _git(path, "config", "user.name", "t")
    commits = {}
    for name in ("m1", "m2"):
        _git(path, "commit", "-q", "--allow-empty", "-m", name)
        commits[name] = _git(path, "rev-parse", "HEAD")
    _git(path, "checkout", "-q", "-b", "pr")
    _git(path, "commit", "-q", "--allow-empty", "-m", "pr")
    commits["pr"] = _git(path, "rev-parse", "HEAD")
    _git(path, "checkout", "-q", "main")
    _git(path, "commit", "-q", "--allow-empty", "-m", "m3")
    commits["m3"] = _git(path, "rev-parse", "HEAD")
    monkeypatch.chdir(path)
    monkeypatch.delenv("GIT_COMMIT", raising=False)
    return commits


def _results(number: int) -> bytes:
    return json.dumps({"format_version": 1, "label": f"nightly-{number}"}).encode()


def _fetch(fake: FakeJenkins, out: Path, candidate: str | None, **kwargs) -> int:
    args = {"job": JOB, "out_dir": out, "experiment": "api-stress", "platform": "linux",
            "jenkins_url": None, "max_age_days": 7.0, "candidate_commit": candidate,
            "strict": False}
    args.update(kwargs)
    service = args.pop("service", None) or JenkinsService(fake.url, timeout=5,
                                                          sleep=lambda s: None)
    return fetch_baseline(service=service, now=NOW, **args)


def test_newest_stable_build_is_chosen_over_an_unstable_last_build(repo, tmp_path):
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(7, "SUCCESS", _ms(2), repo["m1"], {ARTIFACT: _results(7)}))
        fake.add_build(JOB, FakeBuild(8, "SUCCESS", _ms(1), repo["m2"], {ARTIFACT: _results(8)}))
        fake.add_build(JOB, FakeBuild(9, "UNSTABLE", _ms(0.1), repo["m2"],
                                      {ARTIFACT: _results(9)}))
        code = _fetch(fake, tmp_path / "out", repo["pr"])
    assert code == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["label"] == "nightly-8"
    record = load_record(tmp_path / "out" / "results.json")
    assert record is not None and record.status == "found"
    assert (record.job, record.build, record.commit) == (JOB, 8, repo["m2"])
    assert record.url == f"{fake.url}/job/{JOB}/8/"
    assert "#9 is UNSTABLE" in record.reasons[0]
    assert "#8" in record.summary and repo["m2"][:12] in record.summary


def test_a_nightly_newer_than_the_branch_point_is_skipped_for_its_ancestor(repo, tmp_path):
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", _ms(2), repo["m2"], {ARTIFACT: _results(1)}))
        fake.add_build(JOB, FakeBuild(2, "SUCCESS", _ms(1), repo["m3"], {ARTIFACT: _results(2)}))
        assert _fetch(fake, tmp_path / "out", repo["pr"]) == 0
    record = load_record(tmp_path / "out" / "baseline.json")
    assert record.build == 1
    assert "not an ancestor" in record.reasons[0]


def test_only_non_ancestors_is_refused_without_failing_unless_strict(repo, tmp_path, capsys):
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(2, "SUCCESS", _ms(1), repo["m3"], {ARTIFACT: _results(2)}))
        assert _fetch(fake, tmp_path / "a", repo["pr"]) == 0
        assert _fetch(fake, tmp_path / "b", repo["pr"], strict=True) == 1
    assert "no usable baseline" in capsys.readouterr().out
    assert not (tmp_path / "a" / "results.json").exists()
    assert load_record(tmp_path / "a" / "baseline.json").status == "refused"


def test_a_baseline_older_than_the_maximum_age_is_refused(repo, tmp_path):
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(3, "SUCCESS", _ms(10), repo["m1"], {ARTIFACT: _results(3)}))
        assert _fetch(fake, tmp_path / "out", repo["pr"], max_age_days=7) == 0
        assert _fetch(fake, tmp_path / "old", repo["pr"], max_age_days=14) == 0
    reasons = load_record(tmp_path / "out" / "baseline.json").reasons
    assert "older than the maximum age" in reasons[0]
    assert (tmp_path / "old" / "results.json").exists()


def test_a_job_answering_404_fails_closed_unless_allowed(repo, tmp_path, capsys):
    with FakeJenkins() as fake:
        with pytest.raises(ServiceError, match="404.*--allow-missing-job"):
            _fetch(fake, tmp_path / "closed", repo["pr"])
        assert _fetch(fake, tmp_path / "out", repo["pr"], allow_missing_job=True) == 0
        assert _fetch(fake, tmp_path / "strict", repo["pr"], strict=True,
                      allow_missing_job=True) == 1
    out = capsys.readouterr().out
    assert out.startswith("no baseline in perf-harness-nightly")
    assert load_record(tmp_path / "out" / "baseline.json").status == "no-baseline"
    assert not (tmp_path / "closed" / "baseline.json").exists()


def test_a_job_hidden_from_anonymous_is_not_read_as_no_job_yet(repo, tmp_path):
    with FakeJenkins(user="ci", token="tok-123456", anonymous_read=True,
                     hidden=(JOB,)) as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", _ms(1), repo["m1"], {ARTIFACT: _results(1)}))
        with pytest.raises(ServiceError, match="anonymous") as info:
            _fetch(fake, tmp_path / "anon", repo["pr"])
        service = JenkinsService(fake.url, user="ci", token="tok-123456", timeout=5,
                                 sleep=lambda s: None)
        assert _fetch(fake, tmp_path / "out", repo["pr"], service=service) == 0
    assert "JENKINS_TOKEN" in str(info.value)
    assert (tmp_path / "out" / "results.json").exists()
    assert not (tmp_path / "anon" / "baseline.json").exists()


def test_anonymous_fetch_from_a_secured_jenkins_is_an_error_not_no_baseline(repo, tmp_path):
    with FakeJenkins(user="ci", token="tok-123456") as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", _ms(1), repo["m1"], {ARTIFACT: _results(1)}))
        with pytest.raises(ServiceError, match="403 to an anonymous request"):
            _fetch(fake, tmp_path / "anon", repo["pr"])


def test_the_ancestry_check_runs_in_the_given_checkout(repo, tmp_path, monkeypatch):
    elsewhere = tmp_path / "trusted"
    elsewhere.mkdir()
    checkout = Path.cwd()
    monkeypatch.chdir(elsewhere)  # the fetch runs from another (trusted) directory
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", _ms(1), repo["m1"], {ARTIFACT: _results(1)}))
        assert _fetch(fake, tmp_path / "out", repo["pr"], repo=checkout) == 0
    assert load_record(tmp_path / "out" / "baseline.json").status == "found"


def test_a_build_without_this_experiment_and_platform_is_skipped(repo, tmp_path):
    others = {f"perf/{p}/exp{i}/results.json": b"{}" for i in range(11) for p in ("macos", "linux")}
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(4, "SUCCESS", _ms(1), repo["m1"],
                                      {**others, ARTIFACT: _results(4)}))
        fake.add_build(JOB, FakeBuild(5, "SUCCESS", _ms(0.5), repo["m1"], others))
        assert _fetch(fake, tmp_path / "out", repo["pr"]) == 0
    record = load_record(tmp_path / "out" / "baseline.json")
    assert record.build == 4 and "#5 archived no" in record.reasons[0]


def test_a_stale_results_file_is_removed_when_nothing_is_usable(repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "FAILURE", _ms(1), repo["m1"], {ARTIFACT: b"{}"}))
        assert _fetch(fake, out, repo["pr"]) == 0
    assert not (out / "results.json").exists()


def test_artifact_template_fetches_coverage_json_too(repo, tmp_path):
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", _ms(1), repo["m1"],
                                      {"coverage/coverage.json": b'{"totals": {}}'}))
        assert _fetch(fake, tmp_path / "cov", repo["pr"], experiment="coverage",
                      artifact="coverage/coverage.json") == 0
    assert (tmp_path / "cov" / "coverage.json").read_bytes() == b'{"totals": {}}'


def test_without_a_known_candidate_commit_ancestry_is_not_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a git checkout
    monkeypatch.delenv("GIT_COMMIT", raising=False)
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", _ms(1), "f" * 40, {ARTIFACT: _results(1)}))
        assert _fetch(fake, tmp_path / "out", None) == 0
    assert load_record(tmp_path / "out" / "baseline.json").status == "found"


def test_the_cli_fetches_through_jenkins_url_and_credentials(repo, tmp_path, monkeypatch):
    from harness.cli import main

    with FakeJenkins(user="ci", token="tok-123456") as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", int(datetime.now(timezone.utc).timestamp()
                                                          * 1000), repo["m1"],
                                      {ARTIFACT: _results(1)}))
        monkeypatch.setenv("JENKINS_URL", fake.url)
        monkeypatch.setenv("JENKINS_USER", "ci")
        monkeypatch.setenv("JENKINS_TOKEN", "tok-123456")
        code = main(["baseline", "fetch", "--job", JOB, "--out", str(tmp_path / "out"),
                     "--experiment", "api-stress", "--platform", "linux",
                     "--candidate-commit", repo["pr"]])
        monkeypatch.setenv("JENKINS_TOKEN", "wrong-654321")
        refused = main(["baseline", "fetch", "--job", JOB, "--out", str(tmp_path / "bad"),
                        "--experiment", "api-stress", "--platform", "linux"])
    assert code == 0 and (tmp_path / "out" / "results.json").exists()
    assert refused == 1
