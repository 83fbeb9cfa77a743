"""A stand-in GitHub REST API on 127.0.0.1 for the calls `harness publish github` makes.

Answers like api.github.com (or a GitHub Enterprise `/api/v3` prefix): commit statuses (422
"Validation Failed" when the description exceeds 140 characters, as GitHub does), issue comments
listed page by page with RFC 5988 `Link` headers, comment create and edit, 401 "Bad credentials"
for a wrong token, 404 for an unknown repository, `GET /user` for the token's login.

Failure modes as GitHub documents them (REST API, "Rate limits for the REST API"): a primary rate
limit exhausted is 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch seconds)
and the message "API rate limit exceeded for ..."; a secondary rate limit is 403 with a
`retry-after` header and the message "You have exceeded a secondary rate limit..."; server
errors are 5xx with a JSON or HTML body; `app_token=True` makes `/user` answer 403 as it does for
a GitHub App installation token; `html_next` answers 200 with an HTML page (a proxy's login
page). Every request is recorded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalServer

DOCS = "https://docs.github.com/rest"
MAX_DESCRIPTION = 140
STATES = ("error", "failure", "pending", "success")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None


class FakeGitHub(LocalServer):
    """Serve one repository's statuses and one or more PRs' comments."""

    def __init__(self, *, repo: str = "octo/project", token: str = "ghp_fake_token_0123456789",
                 prefix: str = "") -> None:
        self.repo = repo
        self.token = token
        self.prefix = prefix  # "/api/v3" for a GitHub Enterprise server
        self.statuses: list[dict] = []
        self.comments: dict[int, list[dict]] = {}
        self.requests: list[Recorded] = []
        self.login = "perf-bot"
        self.app_token = False  # True: /user is 403, comments are by "perf-bot[bot]" (Bot)
        self.fail_next: list[int] = []  # 5xx statuses to answer before serving normally
        self.rate_limited_until: int | None = None  # epoch seconds: primary limit used up
        self.secondary_next = 0  # requests answered with a secondary rate limit
        self.html_next = 0  # requests answered 200 with an HTML page
        self.read_only = False  # True: writes get 403 as for a token without write permission
        self._next_id = 1000
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"


    def add_comment(self, pr: int, body: str, login: str = "someone",
                    kind: str = "User") -> dict:
        self._next_id += 1
        comment = {
            "id": self._next_id, "node_id": f"IC_{self._next_id}",
            "url": f"{self.url}/repos/{self.repo}/issues/comments/{self._next_id}",
            "html_url": f"https://github.example/{self.repo}/pull/{pr}#issuecomment-"
                        f"{self._next_id}",
            "issue_url": f"{self.url}/repos/{self.repo}/issues/{pr}",
            "body": body, "user": {"login": login, "id": 1, "type": kind},
            "created_at": "2026-11-30T00:00:00Z", "updated_at": "2026-11-30T00:00:00Z",
            "author_association": "MEMBER",
        }
        self.comments.setdefault(pr, []).append(comment)
        return comment

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.requests.append(Recorded(method, self.path, dict(self.headers), body))
                auth = self.headers.get("Authorization", "")
                if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                    self._json(401, {"message": "Bad credentials", "documentation_url": DOCS,
                                     "status": "401"})
                    return
                if self._failure():
                    return
                if fake.read_only and method != "GET":
                    self._json(403, {"message": "Resource not accessible by personal access "
                                                "token", "documentation_url": DOCS,
                                     "status": "403"})
                    return
                split = urlsplit(self.path)
                path = split.path[len(fake.prefix):] if split.path.startswith(fake.prefix) \
                    else split.path
                if path == "/user" and method == "GET":
                    if fake.app_token:
                        self._json(403, {"message": "Resource not accessible by integration",
                                         "documentation_url": DOCS, "status": "403"})
                    else:
                        self._json(200, {"login": fake.login, "id": 7, "type": "User"})
                    return
                root = f"/repos/{fake.repo}/"
                if not path.startswith(root):
                    self._json(404, {"message": "Not Found", "documentation_url": DOCS,
                                     "status": "404"})
                    return
                parts = path[len(root):].split("/")
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                self._route(method, parts, query, body or {})

            def _route(self, method: str, parts: list[str], query: dict, body: dict) -> None:
                if method == "POST" and parts[0] == "statuses" and len(parts) == 2:
                    self._status(parts[1], body)
                elif method == "GET" and parts[0] == "commits" and len(parts) == 2:
                    self._json(200, {"sha": parts[1],
                                     "url": f"{fake.url}/repos/{fake.repo}/commits/{parts[1]}"})
                elif parts[0] == "issues" and len(parts) == 3 and parts[2] == "comments":
                    pr = int(parts[1])
                    if method == "GET":
                        self._page(pr, query)
                    elif fake.app_token:
                        self._json(201, fake.add_comment(pr, body["body"], "perf-bot[bot]",
                                                         "Bot"))
                    else:
                        self._json(201, fake.add_comment(pr, body["body"], fake.login))
                elif method == "PATCH" and parts[:2] == ["issues", "comments"]:
                    for comment in (c for cs in fake.comments.values() for c in cs):
                        if str(comment["id"]) == parts[2]:
                            comment["body"] = body["body"]
                            comment["updated_at"] = "2026-11-30T01:00:00Z"
                            self._json(200, comment)
                            return
                    self._json(404, {"message": "Not Found", "documentation_url": DOCS})
                else:
                    self._json(404, {"message": "Not Found", "documentation_url": DOCS})

            def _failure(self) -> bool:
                """Answer with the next planned failure, if any; True when one was sent."""
                if fake.fail_next:
                    status = fake.fail_next.pop(0)
                    self._json(status, {"message": "Server Error", "status": str(status)})
                elif fake.rate_limited_until is not None:
                    self._json(403, {"message": "API rate limit exceeded for user ID 7. (But "
                                                "here's the good news: Authenticated requests "
                                                "get a higher rate limit.)",
                                     "documentation_url": DOCS, "status": "403"},
                               {"X-RateLimit-Remaining": "0",
                                "X-RateLimit-Reset": str(fake.rate_limited_until),
                                "X-RateLimit-Used": "5000", "X-RateLimit-Resource": "core"})
                elif fake.secondary_next:
                    fake.secondary_next -= 1
                    self._json(403, {"message": "You have exceeded a secondary rate limit. "
                                                "Please wait a few minutes before you try again.",
                                     "documentation_url": DOCS, "status": "403"},
                               {"Retry-After": "60"})
                elif fake.html_next:
                    fake.html_next -= 1
                    page = b"<html><body>Sign in to continue</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                else:
                    return False
                return True

            def _status(self, sha: str, body: dict) -> None:
                errors = []
                if body.get("state") not in STATES:
                    errors.append({"resource": "Status", "field": "state", "code": "invalid"})
                if len(body.get("description") or "") > MAX_DESCRIPTION:
                    errors.append({"resource": "Status", "code": "custom", "field": "description",
                                   "message": "description is too long (maximum is 140 "
                                              "characters)"})
                if errors:
                    self._json(422, {"message": "Validation Failed", "errors": errors,
                                     "documentation_url": DOCS, "status": "422"})
                    return
                status = {"id": len(fake.statuses) + 1, "sha": sha, "state": body["state"],
                          "description": body.get("description"),
                          "target_url": body.get("target_url"),
                          "context": body.get("context", "default"),
                          "url": f"{fake.url}/repos/{fake.repo}/statuses/{sha}",
                          "created_at": "2026-11-30T00:00:00Z",
                          "updated_at": "2026-11-30T00:00:00Z"}
                fake.statuses.append(status)
                self._json(201, status)

            def _page(self, pr: int, query: dict) -> None:
                per_page = min(int(query.get("per_page", 30)), 100)
                page = int(query.get("page", 1))
                items = fake.comments.get(pr, [])
                last = max(1, -(-len(items) // per_page))
                chunk = items[(page - 1) * per_page: page * per_page]
                base = f"{fake.url}/repos/{fake.repo}/issues/{pr}/comments?per_page={per_page}"
                links = []
                if page < last:
                    links.append(f'<{base}&page={page + 1}>; rel="next"')
                    links.append(f'<{base}&page={last}>; rel="last"')
                if page > 1:
                    links.append(f'<{base}&page={page - 1}>; rel="prev"')
                    links.append(f'<{base}&page=1>; rel="first"')
                self._json(200, chunk, {"Link": ", ".join(links)} if links else None)

            def _json(self, status: int, value: object,
                      headers: dict[str, str] | None = None) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999",
                           "X-RateLimit-Reset": str(int(time.time()) + 3600), **(headers or {})}
                for key, value_ in headers.items():
                    self.send_header(key, value_)
                self.end_headers()
                self.wfile.write(data)

        return Handler
