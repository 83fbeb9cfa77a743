"""The Jenkins service: a python-jenkins client with timeouts, bounded retries and clear errors.

python-jenkins fetches the CSRF crumb itself (and copes with Jenkins setups that have no crumb
issuer); this module adds what a build step needs on top: retries with backoff for transient
failures, errors that name the job and the fix, and build records with the fields a baseline needs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import jenkins
import requests

from harness import secrets
from harness.errors import ServiceError

T = TypeVar("T")

# Statuses worth another try; 0 stands for "no answer at all" (connection refused, timeout).
_TRANSIENT_STATUS = (0, 500, 502, 503, 504)
_BUILD_DATA = "hudson.plugins.git.util.BuildData"


class NotFound(ServiceError):
    """The job, build or artifact does not exist (HTTP 404)."""


@dataclass(frozen=True)
class Build:
    """One finished build of a job, with what a baseline needs to know about it."""

    job: str
    number: int
    result: str | None  # SUCCESS, UNSTABLE, FAILURE, ABORTED, or None while running
    timestamp: datetime
    url: str
    commit: str | None  # the git commit built, from the Git plugin's BuildData action
    artifacts: tuple[str, ...]  # relative paths of the archived artifacts


def build_from_json(job: str, data: dict[str, Any], remote: str | None = None) -> Build:
    """A Build from Jenkins' build JSON (`/job/NAME/N/api/json`).

    `remote` is the project's clone URL: the commit is taken from the checkout of that
    repository (see `_built_commit`).
    """
    return Build(
        job=job,
        number=int(data["number"]),
        result=data.get("result"),
        timestamp=datetime.fromtimestamp(int(data.get("timestamp", 0)) / 1000, tz=timezone.utc),
        url=str(data.get("url", "")),
        commit=_built_commit(data.get("actions") or [], remote),
        artifacts=tuple(a["relativePath"] for a in data.get("artifacts") or ()),
    )


def normalize_remote(url: str) -> str:
    """A clone URL reduced to host/path: no scheme, user, password, `.git` or trailing slash,
    and scp-like `git@host:owner/repo` spelled like the https form."""
    url = url.strip().rstrip("/")
    url = re.sub(r"^[a-z+]+://", "", url)
    url = re.sub(r"^[^@/]*@", "", url)  # user[:password]@
    url = re.sub(r"^([^/:]+):(?!\d+/)", r"\1/", url)  # git@host:owner/repo
    url = re.sub(r":\d+/", "/", url)  # explicit port
    return url.removesuffix(".git").lower()


def _built_commit(actions: list[Any], remote: str | None = None) -> str | None:
    """The commit of the project's checkout among the build's Git BuildData actions.

    A pipeline that loads a shared library (or checks out a second repository) records one
    BuildData per repository, the library's first. The one whose `remoteUrls` match `remote`
    is the project's; without a match (or without `remote`) the last one is, because Jenkins
    loads libraries before the Jenkinsfile's own checkout runs.
    """
    found: list[tuple[str, list[str]]] = []
    for action in actions:
        if isinstance(action, dict) and action.get("_class") == _BUILD_DATA:
            revision = action.get("lastBuiltRevision") or {}
            if revision.get("SHA1"):
                urls = [normalize_remote(str(u)) for u in action.get("remoteUrls") or ()]
                found.append((str(revision["SHA1"]), urls))
    if not found:
        return None
    if remote:
        wanted = normalize_remote(remote)
        for sha, urls in found:
            if wanted in urls:
                return sha
    return found[-1][0]


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind a client error, 0 for no answer, None when it is not HTTP.

    python-jenkins re-raises HTTP errors as JenkinsException ("does not exist" even for a 503),
    so the original requests error is looked up in the exception's context chain.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, jenkins.NotFoundException):
            return 404
        if isinstance(seen, requests.HTTPError) and seen.response is not None:
            return seen.response.status_code
        if isinstance(seen, (jenkins.TimeoutException, requests.ConnectionError,
                             requests.Timeout)):
            return 0
        match = re.search(r"\[(\d{3})\]", str(seen))  # "Possibly authentication failed [401]"
        if isinstance(seen, jenkins.JenkinsException) and match:
            return int(match.group(1))
        seen = seen.__cause__ or seen.__context__
    return None


class JenkinsService:
    """Read access to one Jenkins: builds of a job and their artifacts."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.anonymous = not (user and token)
        self.remote: str | None = None  # the project's clone URL, to pick its BuildData
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        # retries=0: the retry policy lives here, where it also covers 5xx answers.
        self._client = jenkins.Jenkins(self.url, username=user, password=token,
                                       timeout=timeout, retries=0)

    @classmethod
    def from_environment(cls, url: str | None = None, **kwargs: Any) -> JenkinsService:
        """Connect with JENKINS_URL, JENKINS_USER and JENKINS_TOKEN (anonymous when unset)."""
        url = url or secrets.optional(secrets.JENKINS_URL)
        if not url:
            raise ServiceError(
                f"no Jenkins URL: pass --jenkins-url or set {secrets.JENKINS_URL} "
                f"(Jenkins sets it in every build)."
            )
        return cls(url, user=secrets.optional(secrets.JENKINS_USER),
                   token=secrets.optional(secrets.JENKINS_TOKEN), **kwargs)

    def _call(self, what: str, func: Callable[[], T]) -> T:
        """Run one client call; retry transient failures with exponential backoff, then give up."""
        attempt = 0
        while True:
            try:
                return func()
            except (jenkins.JenkinsException, requests.RequestException) as exc:
                status = _status(exc)
                if status == 404:
                    raise NotFound(self._not_found(what)) from exc
                if status in (401, 403):
                    raise ServiceError(self._refused(what, status)) from exc
                if status not in _TRANSIENT_STATUS or attempt == self.retries:
                    raise ServiceError(self._failed(what, status, attempt + 1, exc)) from exc
            self._sleep(self.backoff * 2**attempt)
            attempt += 1

    def _who(self) -> str:
        return "anonymous" if self.anonymous else f"user {self.user!r}"

    def _not_found(self, what: str) -> str:
        if self.anonymous:
            return (f"{what}: {self.url} answered 404 to an anonymous request. Jenkins answers "
                    f"404 both for a job that does not exist and for one anonymous may not read: "
                    f"check the job name, and set {secrets.JENKINS_USER} and "
                    f"{secrets.JENKINS_TOKEN} (the Jenkinsfile binds the jenkins-api-token "
                    f"credential) to a user with Job/Read on it.")
        return (f"{what}: {self.url} answered 404 to {self._who()}: the job does not exist, or "
                f"this user lacks Job/Read on it (Jenkins hides such jobs); check the job name "
                f"(PERF_NIGHTLY_JOB) and the user's permissions.")

    def _refused(self, what: str, status: int) -> str:
        if status == 401:
            return (f"{what}: {self.url} answered 401: it refused the credentials of "
                    f"{self._who()}. Set {secrets.JENKINS_USER} and {secrets.JENKINS_TOKEN} "
                    f"to a user and a current API token (user > Configure > API Token).")
        if self.anonymous:
            return (f"{what}: {self.url} answered 403 to an anonymous request: this Jenkins "
                    f"does not let anonymous users read. Set {secrets.JENKINS_USER} and "
                    f"{secrets.JENKINS_TOKEN} (the jenkins-api-token credential) to a user with "
                    f"Overall/Read and Job/Read on the job.")
        return (f"{what}: {self.url} answered 403 to {self._who()}: the user lacks the "
                f"permission (Overall/Read and Job/Read on the job, Run/Artifacts to download).")

    def _failed(self, what: str, status: int | None, attempts: int, exc: BaseException) -> str:
        if status == 0:
            return (f"{what}: {self.url} could not be reached in {attempts} attempt(s) "
                    f"({type(exc).__name__}); check JENKINS_URL / --jenkins-url and that the "
                    f"controller is up.")
        if status is not None and 500 <= status < 600:
            return (f"{what}: {self.url} answered {status} (a server error in Jenkins, not a "
                    f"credentials problem) in {attempts} attempt(s); see the controller's log "
                    f"(Manage Jenkins > System Log) and retry the build later.")
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        return (f"{what}: {self.url} did not answer usefully after {attempts} attempt(s): "
                f"{secrets.redact(first_line)}")

    def build_numbers(self, job: str) -> list[int]:
        """Numbers of the job's builds, newest first (the newest 100, as Jenkins lists them)."""
        info = self._call(f"job {job!r}", lambda: self._client.get_job_info(job))
        return sorted((int(b["number"]) for b in info.get("builds") or ()), reverse=True)

    def build(self, job: str, number: int) -> Build:
        """One build's record."""
        data = self._call(f"build {job} #{number}",
                          lambda: self._client.get_build_info(job, number))
        return build_from_json(job, data, self.remote)

    def builds(self, job: str, limit: int = 30) -> Iterator[Build]:
        """The job's finished builds, newest first, at most `limit` of them (one request each)."""
        for number in self.build_numbers(job)[:limit]:
            yield self.build(job, number)

    def artifact(self, job: str, number: int, relative_path: str) -> bytes:
        """The bytes of one archived artifact, by its path relative to the archive root."""
        return self._call(
            f"artifact {relative_path} of {job} #{number}",
            lambda: self._client.get_build_artifact_as_bytes(job, number, relative_path),
        )


# Added for harness.nightly (helper "history"): python-jenkins has no call for a build's
# description, so the form Jenkins' own UI posts is sent through the client (crumb and auth
# included) with the service's retry policy.
_SUBMIT_DESCRIPTION = "%(folder_url)sjob/%(short_name)s/%(number)s/submitDescription"


def set_build_description(service: JenkinsService, job: str, number: int, text: str) -> None:
    """Replace the description of build `number` of `job` (shown on the build's page)."""
    client = service._client  # pylint: disable=protected-access
    folder_url, short_name = client._get_job_folder(job)  # pylint: disable=protected-access
    url = client._build_url(_SUBMIT_DESCRIPTION,  # pylint: disable=protected-access
                            {"folder_url": folder_url, "short_name": short_name,
                             "number": number})
    service._call(  # pylint: disable=protected-access
        f"description of {job} #{number}",
        lambda: client.jenkins_open(requests.Request("POST", url, data={"description": text})))
