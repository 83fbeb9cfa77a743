"""A stand-in Jenkins on 127.0.0.1 answering the JSON API paths python-jenkins uses.

Shapes follow Jenkins' remote API: job JSON lists `builds` newest first with `lastStableBuild`
and friends, build JSON carries `result`, `timestamp` (ms), `artifacts` (relativePath, fileName,
displayPath) and the Git plugin's BuildData action; artifacts are served under
`/job/NAME/N/artifact/PATH`; `/crumbIssuer/api/json` answers or 404s as configured.

As strict as a real controller with security on (the setup wizard's default, "logged-in users
can do anything", anonymous without Overall/Read): an anonymous request gets 403 with the
`X-You-Are-Authenticated-As` and `X-Required-Permission` headers Jenkins sends; a wrong API token
gets 401; a job the caller may not read answers 404 exactly like a job that does not exist
(Jenkins hides it); a POST without the crumb gets 403 "No valid crumb was included in the
request". `FakeJenkins()` without a user is a controller with security disabled (everyone
reads). Every request is recorded so tests can check the client's request sequence.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from tests.fakes.server import LocalServer

CRUMB = "f3a1c0ffee"
CRUMB_FIELD = "Jenkins-Crumb"


@dataclass
class FakeBuild:
    number: int
    result: str | None
    timestamp_ms: int
    commit: str | None = None
    artifacts: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


class FakeJenkins(LocalServer):
    """Serve jobs (name -> builds) until stopped; use as a context manager."""

    def __init__(self, *, crumb: bool = True, user: str | None = None,
                 token: str | None = None, anonymous_read: bool | None = None,
                 hidden: tuple[str, ...] = ()) -> None:
        self.jobs: dict[str, list[FakeBuild]] = {}
        self.crumb = crumb
        self.auth = (user, token) if user and token else None
        # Security on (a user exists): anonymous may read nothing unless granted.
        self.anonymous_read = self.auth is None if anonymous_read is None else anonymous_read
        self.hidden = set(hidden)  # jobs anonymous may not see: 404, as for a missing job
        self.posts: list[str] = []  # paths of accepted POSTs
        self.requests: list[Recorded] = []
        self.fail_next: list[int] = []  # statuses to answer before serving normally
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_build(self, job: str, build: FakeBuild) -> None:
        self.jobs.setdefault(job, []).append(build)


    # -- JSON shapes -------------------------------------------------------------------------
    def job_url(self, job: str) -> str:
        return self.url + "".join(f"/job/{part}" for part in job.split("/")) + "/"

    def _ref(self, job: str, build: FakeBuild | None) -> dict | None:
        if build is None:
            return None
        return {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                "number": build.number, "url": f"{self.job_url(job)}{build.number}/"}

    def job_json(self, job: str) -> dict:
        builds = sorted(self.jobs[job], key=lambda b: b.number, reverse=True)

        def last(*results: str) -> FakeBuild | None:
            return next((b for b in builds if b.result in results), None)

        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
            "name": job.split("/")[-1],
            "fullName": job,
            "url": self.job_url(job),
            "buildable": True,
            "builds": [self._ref(job, b) for b in builds[:100]],
            "firstBuild": self._ref(job, builds[-1] if builds else None),
            "lastBuild": self._ref(job, builds[0] if builds else None),
            "lastCompletedBuild": self._ref(job, next((b for b in builds if b.result), None)),
            # Jenkins counts UNSTABLE as "successful"; only lastStableBuild means SUCCESS.
            "lastSuccessfulBuild": self._ref(job, last("SUCCESS", "UNSTABLE")),
            "lastStableBuild": self._ref(job, last("SUCCESS")),
            "lastUnstableBuild": self._ref(job, last("UNSTABLE")),
            "lastFailedBuild": self._ref(job, last("FAILURE")),
            "nextBuildNumber": (builds[0].number + 1) if builds else 1,
        }

    def build_json(self, job: str, build: FakeBuild) -> dict:
        actions: list[dict] = [
            {"_class": "hudson.model.CauseAction",
             "causes": [{"_class": "hudson.triggers.TimerTrigger$TimerTriggerCause",
                         "shortDescription": "Started by timer"}]},
        ]
        if build.commit:
            actions.append({
                "_class": "hudson.plugins.git.util.BuildData",
                "lastBuiltRevision": {"SHA1": build.commit,
                                      "branch": [{"SHA1": build.commit, "name": "origin/main"}]},
                "remoteUrls": ["https://git.example.invalid/project.git"],
            })
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "actions": actions,
            "artifacts": [
                {"displayPath": path.rsplit("/", 1)[-1], "fileName": path.rsplit("/", 1)[-1],
                 "relativePath": path}
                for path in sorted(build.artifacts)
            ],
            "building": build.result is None,
            "displayName": f"#{build.number}",
            "fullDisplayName": f"{job} #{build.number}",
            "id": str(build.number),
            "number": build.number,
            "result": build.result,
            "timestamp": build.timestamp_ms,
            "url": f"{self.job_url(job)}{build.number}/",
        }

    # -- HTTP ----------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                fake.requests.append(Recorded("GET", self.path, dict(self.headers)))
                if fake.fail_next:
                    status = fake.fail_next.pop(0)
                    # Jenkins' error page for an exception in the controller ("Oops!").
                    self._send(status, b"<html><h1>Oops!</h1>A problem occurred while "
                               b"processing the request.</html>", "text/html")
                    return
                anonymous = self._authorized()
                if anonymous is None:
                    return
                if anonymous and not fake.anonymous_read \
                        and urlsplit(self.path).path != "/crumbIssuer/api/json":
                    self._forbidden_anonymous()
                    return
                self._route(urlsplit(self.path).path, anonymous)

            def do_POST(self) -> None:  # noqa: N802
                fake.requests.append(Recorded("POST", self.path, dict(self.headers)))
                anonymous = self._authorized()
                if anonymous is None:
                    return
                if anonymous and not fake.anonymous_read:
                    self._forbidden_anonymous()
                    return
                if fake.crumb and self.headers.get(CRUMB_FIELD) != CRUMB:
                    self._send(403, b"<html>No valid crumb was included in the request</html>",
                               "text/html")
                    return
                fake.posts.append(self.path)
                self._send(201, b"", "text/plain")

            def _forbidden_anonymous(self) -> None:
                self._send(403, b"<html>Authentication required</html>", "text/html",
                           {"X-You-Are-Authenticated-As": "anonymous",
                            "X-You-Are-In-Group-Disabled": "JENKINS-39402",
                            "X-Required-Permission": "hudson.model.Hudson.Read",
                            "X-Permission-Implied-By": "hudson.model.Hudson.Administer"})

            def _authorized(self) -> bool | None:
                """True for anonymous, False for the right user, None when refused (sent)."""
                header = self.headers.get("Authorization", "")
                if not header:
                    return True
                expected = "Basic " + base64.b64encode(
                    f"{(fake.auth or ('', ''))[0]}:{(fake.auth or ('', ''))[1]}".encode()).decode()
                if fake.auth is not None and header == expected:
                    return False
                # Jenkins answers a bad API token with 401 and an HTML error page.
                self._send(401, b"<html>Invalid password/token for user</html>", "text/html",
                           {"WWW-Authenticate": 'Basic realm="Jenkins"'})
                return None

            def _route(self, path: str, anonymous: bool) -> None:
                if path == "/crumbIssuer/api/json":
                    if not fake.crumb:
                        self._send(404, b"<html>Not Found</html>", "text/html")
                        return
                    self._json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                                "crumb": CRUMB, "crumbRequestField": CRUMB_FIELD})
                    return
                parts = [unquote(p) for p in path.strip("/").split("/")]
                names: list[str] = []
                while len(parts) >= 2 and parts[0] == "job":
                    names.append(parts[1])
                    parts = parts[2:]
                job = "/".join(names)
                if job not in fake.jobs or (anonymous and job in fake.hidden):
                    self._send(404, b"<html>Not Found</html>", "text/html")
                    return
                if parts == ["api", "json"]:
                    self._json(fake.job_json(job))
                    return
                build = next((b for b in fake.jobs[job]
                              if parts and parts[0] == str(b.number)), None)
                if build is None:
                    self._send(404, b"<html>Not Found</html>", "text/html")
                elif parts[1:] == ["api", "json"]:
                    self._json(fake.build_json(job, build))
                elif parts[1:2] == ["artifact"] and "/".join(parts[2:]) in build.artifacts:
                    name = "/".join(parts[2:])
                    ctype = "application/json" if name.endswith(".json") else "text/plain"
                    self._send(200, build.artifacts[name], ctype)
                else:
                    self._send(404, b"<html>Not Found</html>", "text/html")

            def _json(self, value: object) -> None:
                self._send(200, json.dumps(value).encode(), "application/json;charset=utf-8")

            def _send(self, status: int, body: bytes, ctype: str,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler
