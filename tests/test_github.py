"""harness.github through the real PyGithub client against a local stand-in GitHub API."""

from __future__ import annotations

import json
import logging

import github
import pytest

from harness.errors import HarnessError, SecretMissingError, ServiceError
from harness.github import MARKER, cut, outcome_from, publish
from tests.fakes.github_server import FakeGitHub

pytestmark = pytest.mark.integration
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_fake_token_0123456789"


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    # The stand-in needs no sparing: no pauses between requests.
    monkeypatch.setattr("harness.github.WRITE_INTERVAL", 0.0)
    monkeypatch.setattr("harness.github.REQUEST_INTERVAL", 0.0)


def _verdict(tmp_path, overall: str, headline: str = "latency p50 +31% (p=0.004)",
             summary: str | None = "## Performance\nregressed\n"):
    (tmp_path / "verdict.json").write_text(json.dumps({"overall": overall, "headline": headline}))
    if summary is not None:
        (tmp_path / "summary.md").write_text(summary)
    return tmp_path


def _publish(fake: FakeGitHub, **kwargs) -> int:
    args = {"repo": fake.repo, "sha": SHA, "pr_number": 7, "state": "final",
            "verdict_dir": None, "report_url": "https://ci.example/job/p/1/perf-report/",
            "base_url": fake.url, "context": "performance/linux"}
    args.update(kwargs)
    return publish(**args)


def test_pending_then_final_status_and_one_comment(tmp_path):
    with FakeGitHub() as fake:
        assert _publish(fake, state="pending") == 0
        assert _publish(fake, verdict_dir=_verdict(tmp_path, "regression")) == 0
    assert [s["state"] for s in fake.statuses] == ["pending", "failure"]
    final = fake.statuses[-1]
    assert final["context"] == "performance/linux" and final["sha"] == SHA
    assert final["target_url"] == "https://ci.example/job/p/1/perf-report/"
    assert final["description"].startswith("regression: latency p50 +31%")
    assert fake.comments[7][0]["body"] == f"{MARKER}\n## Performance\nregressed\n"


@pytest.mark.parametrize("overall,state", [("pass", "success"), ("inconclusive", "success"),
                                           ("regression", "failure"), ("refused", "error"),
                                           ("invalid", "error")])
def test_overall_verdict_maps_to_status_state(tmp_path, overall, state):
    with FakeGitHub() as fake:
        _publish(fake, verdict_dir=_verdict(tmp_path, overall), pr_number=None)
    assert fake.statuses[-1]["state"] == state and 7 not in fake.comments


def test_comment_is_updated_in_place_across_pages(tmp_path):
    with FakeGitHub() as fake:
        for i in range(65):  # the marker comment sits on page 3 of 30
            fake.add_comment(7, f"review note {i}")
        old = fake.add_comment(7, f"{MARKER}\nold report")
        fake.add_comment(7, "later note")
        _publish(fake, verdict_dir=_verdict(tmp_path, "pass", summary="new report\n"))
        _publish(fake, verdict_dir=_verdict(tmp_path, "pass", summary="newer report\n"))
    marked = [c for c in fake.comments[7] if MARKER in c["body"]]
    assert marked == [old] and old["body"] == f"{MARKER}\nnewer report\n"
    pages = [r.path for r in fake.requests if r.method == "GET" and "/comments" in r.path]
    assert any("page=3" in p for p in pages)
    assert len(fake.comments[7]) == 67


def test_a_long_description_is_cut_to_140_characters_so_github_accepts_it(tmp_path):
    long_headline = "latency of /channels regressed " + "because of many reasons " * 20
    with FakeGitHub() as fake:
        _publish(fake, verdict_dir=_verdict(tmp_path, "regression", headline=long_headline))
    description = fake.statuses[-1]["description"]
    assert len(description) <= 140 and description.endswith("\u2026")


def test_the_stand_in_rejects_a_141_character_description_like_github(tmp_path):
    with FakeGitHub() as fake:
        client = github.Github(auth=github.Auth.Token(TOKEN), base_url=fake.url, lazy=True)
        commit = client.get_repo(fake.repo).get_commit(SHA)
        with pytest.raises(github.GithubException) as info:
            commit.create_status(state="success", description="x" * 141)
    assert info.value.status == 422


def test_github_enterprise_base_url_is_used(tmp_path):
    with FakeGitHub(prefix="/api/v3") as fake:
        _publish(fake, verdict_dir=_verdict(tmp_path, "pass"))
    assert fake.requests and all(r.path.startswith("/api/v3/") for r in fake.requests)


def test_missing_token_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("GITHUB_TOKEN")
    with FakeGitHub() as fake, pytest.raises(SecretMissingError, match="GITHUB_TOKEN"):
        _publish(fake, state="pending")
    assert fake.requests == []


def test_bad_token_is_an_error_that_never_shows_the_token(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_wrong_secret_value")
    caplog.set_level(logging.DEBUG)
    with FakeGitHub() as fake, pytest.raises(ServiceError) as info:
        _publish(fake, state="pending")
    assert "401" in str(info.value) and "GITHUB_TOKEN" in str(info.value)
    assert "ghp_wrong_secret_value" not in str(info.value)
    assert "ghp_wrong_secret_value" not in caplog.text


def test_unknown_repository_is_a_404_error(tmp_path):
    with FakeGitHub() as fake, pytest.raises(ServiceError, match="404"):
        _publish(fake, repo="octo/missing", state="pending")


def test_no_baseline_is_reported_as_success_with_the_reason(tmp_path):
    (tmp_path / "baseline.json").write_text(json.dumps({
        "status": "no-baseline", "job": "nightly", "artifact": "perf/linux/x/results.json",
        "jenkins_url": "http://j", "reasons": ["job nightly does not exist yet"]}))
    outcome = outcome_from(tmp_path)
    assert outcome.state == "success" and outcome.description.startswith("no baseline")


def test_a_directory_without_verdict_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="no verdict.json"):
        outcome_from(tmp_path)


def test_cut_keeps_short_text_and_flattens_lines():
    assert cut("a\nb") == "a b"
    assert len(cut("y" * 500)) == 140
