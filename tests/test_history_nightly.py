"""harness.nightly: new steps go to the build description and a GitHub issue, once each."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from harness import history, nightly
from harness.cli import main
from harness.errors import HarnessError
from harness.jenkins import JenkinsService
from tests.fakes.github_server import FakeGitHub
from tests.fakes.jenkins_server import CRUMB, CRUMB_FIELD, FakeBuild, FakeJenkins, Recorded
from tests.history_data import START, commit_id, write_nights
from tests.history_data import nightly as nightly_results

pytestmark = pytest.mark.integration
NIGHTLY_JOB = "perf-nightly"
ENV = {"JOB_NAME": NIGHTLY_JOB, "BUILD_NUMBER": "42"}


class DescribedJenkins(FakeJenkins):
    """The stand-in Jenkins plus the form POST that sets a build's description."""

    def __init__(self, **kwargs) -> None:
        self.descriptions: dict[tuple[str, int], str] = {}
        super().__init__(**kwargs)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        fake = self

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_POST(self) -> None:  # noqa: N802
                fake.requests.append(Recorded("POST", self.path, dict(self.headers)))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
                if fake.crumb and self.headers.get(CRUMB_FIELD) != CRUMB:
                    self._send(403, b"<html>No valid crumb</html>", "text/html")
                elif (len(parts) == 4 and parts[0] == "job" and parts[3] == "submitDescription"
                      and any(str(b.number) == parts[2] for b in fake.jobs.get(parts[1], []))):
                    fake.descriptions[parts[1], int(parts[2])] = \
                        parse_qs(body)["description"][0]
                    self._send(200, b"", "text/html")
                else:
                    self._send(404, b"<html>Not Found</html>", "text/html")

        return Handler


class IssuesGitHub(FakeGitHub):
    """The stand-in GitHub plus issue creation (POST /repos/OWNER/NAME/issues)."""

    def __init__(self, **kwargs) -> None:
        self.issues: list[dict] = []
        super().__init__(**kwargs)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        fake = self

        class Handler(base):  # type: ignore[valid-type,misc]
            def _route(self, method: str, parts: list[str], query: dict, body: dict) -> None:
                if method == "POST" and parts == ["issues"]:
                    number = len(fake.issues) + 1
                    issue = {"id": number, "number": number, "title": body["title"],
                             "body": body.get("body"), "state": "open",
                             "url": f"{fake.url}/repos/{fake.repo}/issues/{number}",
                             "html_url": f"https://github.example/{fake.repo}/issues/{number}"}
                    fake.issues.append(issue)
                    self._json(201, issue)
                else:
                    super()._route(method, parts, query, body)

        return Handler


def _synced(tmp_path, nights=range(14), step_at=8):
    write_nights(tmp_path / "nights", nights, step_at=step_at)
    db = tmp_path / "h.sqlite"
    history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
    return db


def test_new_steps_are_described_on_the_build_and_opened_as_one_issue_once(tmp_path,
                                                                           monkeypatch):
    db = _synced(tmp_path)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_fake_token_0123456789")
    with DescribedJenkins() as jenkins, IssuesGitHub() as github:
        jenkins.add_build(NIGHTLY_JOB, FakeBuild(42, None, 0))
        service = JenkinsService(jenkins.url, timeout=5, sleep=lambda s: None)
        first = nightly.post_new_steps(db=db, jenkins=service, github_repo=github.repo,
                                       github_base_url=github.url, environ=ENV,
                                       log=lambda line: None)
        again = nightly.post_new_steps(db=db, jenkins=service, github_repo=github.repo,
                                       github_base_url=github.url, environ=ENV,
                                       log=lambda line: None)
    names = sorted(s.analysis.key.name for s in first.steps)
    assert names == ["instructions_per_request[channels]", "latency_mean"]
    assert first.description == f"{NIGHTLY_JOB} #42" and again.steps == ()
    text = jenkins.descriptions[NIGHTLY_JOB, 42]
    command = f"harness bisect {commit_id(7)[:12]} {commit_id(8)[:12]} experiments/api-quick.toml"
    assert command in text and text.startswith("<b>Performance history: 2 new step(s)")
    (issue,) = github.issues
    assert issue["title"] == "Performance: 2 steps in gated metrics"
    assert command in issue["body"] and first.issue == issue["html_url"]


def test_a_step_confirmed_by_later_nights_is_not_announced_again(tmp_path):
    db = _synced(tmp_path, nights=range(12), step_at=6)
    with DescribedJenkins() as jenkins:
        jenkins.add_build(NIGHTLY_JOB, FakeBuild(42, None, 0))
        service = JenkinsService(jenkins.url, timeout=5, sleep=lambda s: None)
        first = nightly.post_new_steps(db=db, jenkins=service, environ=ENV,
                                       log=lambda line: None)
        write_nights(tmp_path / "nights", range(12, 16), step_at=6)  # four more nights
        history.sync(db=db, from_dir=tmp_path / "nights", log=lambda line: None)
        later = nightly.post_new_steps(db=db, jenkins=service, environ=ENV,
                                       log=lambda line: None)
    assert len(first.steps) == 2 and later.steps == ()


def test_without_a_regression_nothing_is_posted(tmp_path):
    db = _synced(tmp_path, step_at=None)
    with DescribedJenkins() as jenkins:
        service = JenkinsService(jenkins.url, timeout=5, sleep=lambda s: None)
        result = nightly.post_new_steps(db=db, jenkins=service, environ=ENV,
                                        log=lambda line: None)
        posts = [r for r in jenkins.requests if r.method == "POST"]
    assert result.steps == () and posts == []


def test_post_outside_a_build_names_the_variables(tmp_path):
    db = _synced(tmp_path)
    with pytest.raises(HarnessError, match="JOB_NAME and BUILD_NUMBER"):
        nightly.post_new_steps(db=db, jenkins=None, environ={}, log=lambda line: None)


def test_a_failed_post_is_retried_the_next_night(tmp_path):
    db = _synced(tmp_path)
    with DescribedJenkins() as jenkins:
        service = JenkinsService(jenkins.url, timeout=5, retries=0, sleep=lambda s: None)
        with pytest.raises(HarnessError):
            nightly.post_new_steps(db=db, jenkins=service, environ=ENV,
                                   log=lambda line: None)  # build 42 does not exist: 404
        jenkins.add_build(NIGHTLY_JOB, FakeBuild(42, None, 0))
        retried = nightly.post_new_steps(db=db, jenkins=service, environ=ENV,
                                         log=lambda line: None)
    assert len(retried.steps) == 2


def test_cli_nightly_sync_from_jenkins_and_post(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JOB_NAME", NIGHTLY_JOB)
    monkeypatch.setenv("BUILD_NUMBER", "42")
    with DescribedJenkins() as jenkins:
        for night in range(14):
            results = nightly_results(night, latency=0.01 * (1.3 if night >= 8 else 1.0),
                                      instructions=1e6 * (1.05 if night >= 8 else 1.0))
            jenkins.add_build(NIGHTLY_JOB, FakeBuild(
                night + 1, "SUCCESS", int((START.timestamp() + night * 86400) * 1000),
                commit_id(night),
                {"perf/linux/api-quick/results.json": json.dumps(results.to_json()).encode()}))
        results = nightly_results(14, latency=0.013, instructions=1.05e6)
        jenkins.add_build(NIGHTLY_JOB, FakeBuild(  # this build, still running, archived already
            42, None, int((START.timestamp() + 14 * 86400) * 1000), commit_id(14),
            {"perf/linux/api-quick/results.json": json.dumps(results.to_json()).encode()}))
        code = main(["history", "sync", "--jenkins", NIGHTLY_JOB, "--jenkins-url", jenkins.url,
                     "--db", str(tmp_path / "h.sqlite"), "--post"])
    out = capsys.readouterr().out
    assert code == 0 and "15 new run(s)" in out and "described perf-nightly #42" in out
    assert "harness bisect" in jenkins.descriptions[NIGHTLY_JOB, 42]
