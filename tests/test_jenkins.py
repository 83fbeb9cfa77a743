"""harness.jenkins through the real python-jenkins client against a local stand-in Jenkins."""

from __future__ import annotations

import pytest

from harness.errors import ServiceError
from harness.jenkins import JenkinsService, NotFound, build_from_json
from tests.fakes.jenkins_server import CRUMB, CRUMB_FIELD, FakeBuild, FakeJenkins

pytestmark = pytest.mark.integration
JOB = "perf-harness-nightly"


def _service(fake: FakeJenkins, **kwargs) -> tuple[JenkinsService, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("timeout", 5)
    return JenkinsService(fake.url, sleep=sleeps.append, **kwargs), sleeps


def test_crumb_is_fetched_once_and_sent_with_every_request():
    with FakeJenkins(crumb=True) as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000, "a" * 40))
        service, _ = _service(fake)
        assert [b.number for b in service.builds(JOB)] == [1]
    paths = [r.path for r in fake.requests]
    assert paths.count("/crumbIssuer/api/json") == 1
    api = [r for r in fake.requests if r.path != "/crumbIssuer/api/json"]
    assert api and all(r.headers.get(CRUMB_FIELD) == CRUMB for r in api)


def test_jenkins_without_crumb_issuer_is_served_without_crumb_header():
    with FakeJenkins(crumb=False) as fake:
        fake.add_build(JOB, FakeBuild(3, "SUCCESS", 1_700_000_000_000))
        service, _ = _service(fake)
        assert service.build_numbers(JOB) == [3]
    assert all(CRUMB_FIELD not in r.headers for r in fake.requests)


def test_wrong_token_is_an_error_naming_the_variables_not_the_token(monkeypatch):
    monkeypatch.setenv("JENKINS_TOKEN", "wrong-token-123")
    with FakeJenkins(user="ci", token="right-token-456") as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        service, sleeps = _service(fake, user="ci", token="wrong-token-123")
        with pytest.raises(ServiceError) as info:
            service.build_numbers(JOB)
    message = str(info.value)
    assert "401" in message and "JENKINS_TOKEN" in message and "JENKINS_USER" in message
    assert "wrong-token-123" not in message
    assert sleeps == []  # bad credentials are not retried


def test_right_token_is_accepted():
    with FakeJenkins(user="ci", token="right-token-456") as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        service, _ = _service(fake, user="ci", token="right-token-456")
        assert service.build_numbers(JOB) == [1]


def test_missing_artifact_is_not_found():
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000,
                                      artifacts={"perf/linux/a/results.json": b"{}"}))
        service, _ = _service(fake)
        with pytest.raises(NotFound, match="perf/linux/b/results.json"):
            service.artifact(JOB, 1, "perf/linux/b/results.json")
        assert service.artifact(JOB, 1, "perf/linux/a/results.json") == b"{}"


def test_many_artifacts_are_listed_and_fetched_by_relative_path():
    artifacts = {f"perf/{p}/exp{i}/results.json": f'{{"i": {i}, "p": "{p}"}}'.encode()
                 for i in range(12) for p in ("linux", "windows")}
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(9, "SUCCESS", 1_700_000_000_000, artifacts=artifacts))
        service, _ = _service(fake)
        build = service.build(JOB, 9)
        assert len(build.artifacts) == 24 > 20
        data = service.artifact(JOB, 9, "perf/windows/exp11/results.json")
    assert data == b'{"i": 11, "p": "windows"}'


def test_transient_503_is_retried_with_growing_backoff():
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        service, sleeps = _service(fake, retries=3, backoff=0.5)
        service.build_numbers(JOB)  # resolves the crumb first, so failures hit the job request
        fake.fail_next = [503, 502]
        assert service.build_numbers(JOB) == [1]
    assert sleeps == [0.5, 1.0]


def test_retries_are_bounded_then_the_error_says_how_many():
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        service, sleeps = _service(fake, retries=2, backoff=0.1)
        service.build_numbers(JOB)
        fake.fail_next = [503] * 10
        with pytest.raises(ServiceError, match="in 3 attempt"):
            service.build_numbers(JOB)
    assert len(sleeps) == 2


def test_unreachable_jenkins_is_a_service_error():
    service = JenkinsService("http://127.0.0.1:9", timeout=2, retries=1, sleep=lambda s: None)
    with pytest.raises(ServiceError, match="127.0.0.1:9"):
        service.build_numbers(JOB)


def test_folder_jobs_are_addressed_by_path():
    with FakeJenkins() as fake:
        fake.add_build("team/perf-harness/main", FakeBuild(4, "UNSTABLE", 1_700_000_000_000))
        service, _ = _service(fake)
        build = service.build("team/perf-harness/main", 4)
    assert build.result == "UNSTABLE" and build.url.endswith("/job/main/4/")


def _two_checkouts() -> dict:
    """A pipeline that loaded a shared library (recorded first), then checked out the project."""
    return {"number": 5, "timestamp": 0, "url": "u", "result": "SUCCESS", "artifacts": [],
            "actions": [{}, {"_class": "hudson.plugins.git.util.BuildData",
                              "lastBuiltRevision": {"SHA1": "library"},
                              "remoteUrls": ["https://github.com/org/jenkins-library.git"]},
                        {"_class": "hudson.plugins.git.util.BuildData",
                         "lastBuiltRevision": {"SHA1": "abc"},
                         "remoteUrls": ["https://github.com/org/project.git"]}]}


def test_build_commit_is_the_project_checkout_not_a_library_loaded_first():
    assert build_from_json("j", _two_checkouts()).commit == "abc"


def test_build_commit_matches_the_project_remote_in_any_spelling():
    data = _two_checkouts()
    data["actions"].reverse()
    assert build_from_json("j", data, "git@github.com:org/project").commit == "abc"
    assert build_from_json("j", data, "https://ci:x@github.com/Org/project.git/").commit == "abc"


def test_anonymous_403_says_anonymous_reads_are_refused_and_which_variables_to_set():
    with FakeJenkins(user="ci", token="right-token-456") as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        service, sleeps = _service(fake)
        with pytest.raises(ServiceError) as info:
            service.build_numbers(JOB)
    message = str(info.value)
    assert "403" in message and "anonymous" in message
    assert "JENKINS_USER" in message and "jenkins-api-token" in message
    assert "refused the credentials" not in message
    assert sleeps == []


def test_a_job_hidden_from_anonymous_is_404_and_the_message_says_it_may_be_hidden():
    with FakeJenkins(user="ci", token="right-token-456", anonymous_read=True,
                     hidden=(JOB,)) as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        service, _ = _service(fake)
        with pytest.raises(NotFound) as info:
            service.build_numbers(JOB)
        authenticated, _ = _service(fake, user="ci", token="right-token-456")
        assert authenticated.build_numbers(JOB) == [1]
    assert "anonymous" in str(info.value) and "JENKINS_TOKEN" in str(info.value)


def test_a_server_error_is_not_called_an_authentication_failure():
    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        service, sleeps = _service(fake, retries=1, backoff=0.1)
        service.build_numbers(JOB)
        fake.fail_next = [500, 500]
        with pytest.raises(ServiceError) as info:
            service.build_numbers(JOB)
    message = str(info.value)
    assert "500" in message and "server error" in message and "System Log" in message
    assert "authentication" not in message.lower()
    assert len(sleeps) == 1


def test_the_stand_in_refuses_a_post_without_crumb_like_jenkins():
    import requests

    with FakeJenkins() as fake:
        fake.add_build(JOB, FakeBuild(1, "SUCCESS", 1_700_000_000_000))
        bare = requests.post(fake.job_url(JOB) + "build", timeout=5)
        crumbed = requests.post(fake.job_url(JOB) + "build", headers={CRUMB_FIELD: CRUMB},
                                timeout=5)
    assert bare.status_code == 403 and "crumb" in bare.text
    assert crumbed.status_code == 201


def test_missing_url_names_the_variable(monkeypatch):
    monkeypatch.delenv("JENKINS_URL", raising=False)
    with pytest.raises(ServiceError, match="JENKINS_URL"):
        JenkinsService.from_environment(None)
