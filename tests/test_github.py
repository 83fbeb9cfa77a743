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
        old = fake.add_comment(7, f"{MARKER}\nold report", login=fake.login)
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


def test_a_marker_comment_of_another_user_is_left_alone(tmp_path):
    with FakeGitHub() as fake:
        theirs = fake.add_comment(7, f"quoting the bot: {MARKER}\nold report", login="someone")
        _publish(fake, verdict_dir=_verdict(tmp_path, "pass", summary="new report\n"))
        _publish(fake, verdict_dir=_verdict(tmp_path, "pass", summary="newer report\n"))
    assert theirs["body"].startswith("quoting the bot")
    ours = [c for c in fake.comments[7] if c["user"]["login"] == "perf-bot"]
    assert len(ours) == 1 and ours[0]["body"] == f"{MARKER}\nnewer report\n"


def test_an_app_token_edits_only_a_bot_comment(tmp_path):
    with FakeGitHub() as fake:
        fake.app_token = True
        fake.add_comment(7, f"{MARKER}\nhuman copy", login="someone")
        _publish(fake, verdict_dir=_verdict(tmp_path, "pass", summary="one\n"))
        _publish(fake, verdict_dir=_verdict(tmp_path, "pass", summary="two\n"))
    bots = [c for c in fake.comments[7] if c["user"]["type"] == "Bot"]
    assert len(bots) == 1 and bots[0]["body"].endswith("two\n")
    assert fake.comments[7][0]["body"].endswith("human copy")


def test_a_server_error_says_it_is_github_not_the_network(tmp_path, monkeypatch):
    from harness.github import _retry

    fast = _retry()
    fast.backoff_factor = 0
    monkeypatch.setattr("harness.github._retry", lambda: fast)
    with FakeGitHub() as fake, pytest.raises(ServiceError) as info:
        fake.fail_next = [500] * 10
        _publish(fake, state="pending")
    assert len(fake.requests) == 4  # the first try and 3 retries
    message = str(info.value)
    assert "answered 500" in message and "githubstatus" in message
    assert "could not be reached" not in message and "RetryError" not in message


def test_a_transient_server_error_is_retried(tmp_path, monkeypatch):
    monkeypatch.setattr("harness.github._retry", lambda: __import__(
        "urllib3").util.retry.Retry(total=3, status_forcelist=(500, 502, 503),
                                    allowed_methods=None, raise_on_status=False))
    with FakeGitHub() as fake:
        fake.fail_next = [502]
        assert _publish(fake, state="pending") == 0
    assert fake.statuses[-1]["state"] == "pending"


def test_primary_rate_limit_says_when_it_resets_and_does_not_wait(tmp_path):
    reset = 1_900_000_000  # 2030-03-17 17:46:40 UTC
    with FakeGitHub() as fake, pytest.raises(ServiceError) as info:
        fake.rate_limited_until = reset
        _publish(fake, state="pending")
    message = str(info.value)
    assert "403" in message and "rate limit" in message and "2030-03-17 17:46:40 UTC" in message
    assert len(fake.requests) == 1


def test_secondary_rate_limit_says_how_long_to_wait(tmp_path):
    with FakeGitHub() as fake, pytest.raises(ServiceError) as info:
        fake.secondary_next = 5
        _publish(fake, state="pending")
    assert "secondary rate limit" in str(info.value) and "60 s" in str(info.value)


def test_a_validation_error_lists_github_s_reasons(tmp_path):
    from harness.github import Outcome

    monkey = pytest.MonkeyPatch()
    monkey.setattr("harness.github.cut", lambda text, limit=140: "x" * 141)
    try:
        with FakeGitHub() as fake, pytest.raises(ServiceError) as info:
            _publish(fake, state="error", description="no agent")
    finally:
        monkey.undo()
    assert "422" in str(info.value) and "maximum is 140" in str(info.value)
    assert Outcome  # the type the description travels in


def test_a_200_page_that_is_not_json_is_a_clear_error(tmp_path):
    with FakeGitHub() as fake, pytest.raises(ServiceError) as info:
        fake.html_next = 5
        _publish(fake, state="pending")
    assert "not GitHub's JSON API" in str(info.value) and "--base-url" in str(info.value)


def test_error_state_posts_the_reason_without_a_verdict(tmp_path):
    with FakeGitHub() as fake:
        _publish(fake, state="error", description="no agent labelled 'perf && macos' came online")
    assert fake.statuses[-1]["state"] == "error"
    assert "perf && macos" in fake.statuses[-1]["description"]
    with pytest.raises(HarnessError, match="--description"):
        publish(repo="o/r", sha=SHA, pr_number=None, state="error", verdict_dir=None,
                report_url=None, base_url="http://127.0.0.1:9", context="c")


def test_a_token_without_write_permission_is_told_apart_from_a_rate_limit(tmp_path):
    with FakeGitHub() as fake, pytest.raises(ServiceError) as info:
        fake.read_only = True
        _publish(fake, state="pending")
    message = str(info.value)
    assert "403" in message and "commit statuses (write)" in message
    assert "rate limit" not in message
