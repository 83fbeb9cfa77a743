"""Feedback on GitHub: a commit status on the PR head and one PR comment updated in place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import github
import requests
from github import Auth, GithubException
from urllib3.util.retry import Retry

from harness import secrets
from harness.baseline import load_record
from harness.errors import ExitCode, HarnessError, ServiceError

MARKER = "<!-- perf-harness-report -->"
MAX_DESCRIPTION = 140  # GitHub rejects longer status descriptions with 422
DEFAULT_BASE_URL = "https://api.github.com"
WRITE_INTERVAL = 1.0  # seconds between writes: GitHub asks integrations to space them out
REQUEST_INTERVAL = 0.25  # seconds between any two requests (PyGithub's default)
MAX_COMMENTS = 3000  # comments scanned for the marker: bounds the paging loop
# overall verdict -> commit status state (DESIGN 4.1: only a regression fails the build)
STATES = {"pass": "success", "inconclusive": "success", "regression": "failure",
          "refused": "error", "invalid": "error"}


@dataclass(frozen=True)
class Outcome:
    """What to post: the status state and description, and the PR comment body (or None)."""

    state: str
    description: str
    comment: str | None


def cut(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """`text` on one line, at most `limit` characters, ending in an ellipsis when shortened."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def outcome_from(verdict_dir: Path) -> Outcome:
    """Read verdict.json and summary.md (or a fetch's baseline.json when nothing was compared)."""
    from harness.outputs import check_session  # a failed session's old verdict is never posted

    check_session(verdict_dir)
    verdict_path = verdict_dir / "verdict.json"
    if verdict_path.exists():
        try:
            verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
            overall = verdict["overall"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"{verdict_path}: no readable `overall` verdict ({exc}); it was "
                               f"not written by `harness compare`.") from exc
        if overall not in STATES:
            raise HarnessError(f"{verdict_path}: overall = {overall!r}; expected one of "
                               f"{', '.join(STATES)}.")
        headline = verdict.get("headline") or "; ".join(verdict.get("reasons", [])) or overall
        summary = verdict_dir / "summary.md"
        body = summary.read_text(encoding="utf-8") if summary.exists() else headline
        return Outcome(STATES[overall], cut(f"{overall}: {headline}"), body)
    record = load_record(verdict_dir / "baseline.json")
    if record is not None and record.status != "found":
        text = record.summary
        return Outcome("success", cut(text), f"**Performance:** {text}\n")
    raise HarnessError(f"{verdict_dir}: no verdict.json; run `harness compare ... --out "
                       f"{verdict_dir}` first, or pass the baseline fetch directory when there "
                       f"was no baseline.")


def _retry() -> Retry:
    """Retry server errors a few times, then hand the last answer to PyGithub (so a 500 is
    reported as a 500, not as "could not be reached"); never sleep through a rate limit: a
    build step that waits an hour for the reset is worse than a clear error now."""
    return Retry(total=3, backoff_factor=1.0, status_forcelist=(500, 502, 503, 504),
                 allowed_methods=frozenset({"GET", "POST", "PATCH"}), raise_on_status=False,
                 respect_retry_after_header=False)


def _client(token: str, base_url: str | None) -> github.Github:
    return github.Github(
        auth=Auth.Token(token), base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
        timeout=30, retry=_retry(), lazy=True,
        seconds_between_writes=WRITE_INTERVAL, seconds_between_requests=REQUEST_INTERVAL,
    )


def _own_login(client: github.Github) -> str | None:
    """The login the token acts as; None for a GitHub App installation token (no /user)."""
    try:
        return str(client.get_user().login)
    except GithubException as exc:
        if exc.status in (401, 403, 404):
            return None
        raise


def _is_ours(comment: Any, login: str | None) -> bool:
    user = getattr(comment, "user", None)
    if user is None:
        return False
    if login is not None:
        return str(user.login) == login
    return str(getattr(user, "type", "")) == "Bot"  # an App posts as "<name>[bot]"


def upsert_comment(issue, body: str, login: str | None = None) -> str:
    """Edit our own comment carrying the marker, or create one; returns "updated"/"created".

    Only a comment written by this token's user (`login`; for an App token, by a bot) is
    edited: anyone can paste the marker into a comment of theirs, and that is not ours.
    """
    text = f"{MARKER}\n{body}"
    for index, comment in enumerate(issue.get_comments()):
        if index >= MAX_COMMENTS:
            break
        if MARKER in (comment.body or "") and _is_ours(comment, login):
            comment.edit(text)
            return "updated"
    issue.create_comment(text)
    return "created"


def _header(exc: GithubException, name: str) -> str | None:
    for key, value in (exc.headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _rate_limit_hint(exc: GithubException, message: str) -> str | None:
    """What to do about a primary or secondary rate limit, or None when it is neither."""
    remaining, reset = _header(exc, "X-RateLimit-Remaining"), _header(exc, "X-RateLimit-Reset")
    retry_after = _header(exc, "Retry-After")
    if exc.status not in (403, 429):
        return None
    if remaining == "0":
        when = "later"
        if reset and reset.isdigit():
            when = "after " + datetime.fromtimestamp(int(reset), timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC")
        limit = _header(exc, "X-RateLimit-Limit") or "?"
        return (f" The token's rate limit ({limit} requests an hour) is used up; it resets "
                f"{when}. Re-run the feedback then, or use a token of its own for Jenkins "
                f"(a GitHub App gets a higher limit).")
    if retry_after or "secondary rate limit" in message.lower():
        wait = f"{retry_after} s" if retry_after else "a minute or more"
        return (f" GitHub's secondary rate limit (too many requests or writes in a short time "
                f"from this token) was hit; wait {wait} before retrying, and keep other jobs "
                f"from sharing this token.")
    return None


def _service_error(exc: GithubException, what: str) -> ServiceError:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or "no message")
    hint = _rate_limit_hint(exc, message)
    if hint is not None:
        pass
    elif exc.status == 401:
        hint = f" Check that {secrets.GITHUB_TOKEN} holds a valid token."
    elif exc.status == 403:
        hint = (" The token may not do this: it needs commit statuses (write) and pull "
                "requests or issues (write) on the repository.")
    elif exc.status == 404:
        hint = " Check --repo, --pr and --base-url, and that the token can see the repository."
    elif exc.status == 422:
        details = [str(e.get("message") or f"{e.get('field')} {e.get('code')}")
                   for e in data.get("errors") or () if isinstance(e, dict)]
        hint = (" GitHub refused the values" + (f": {'; '.join(details)}" if details else "")
                + ". This is a bug in the harness' request; report it with this line.")
    elif 500 <= exc.status < 600:
        hint = (" That is an error on GitHub's side, not in the token or the request "
                "(see https://www.githubstatus.com); nothing was posted, re-run the feedback "
                "later.")
    return ServiceError(secrets.redact(f"{what}: GitHub answered {exc.status} "
                                       f"({message}).{hint}"))


def publish(*, repo: str, sha: str, pr_number: int | None, state: str,
            verdict_dir: Path | None, report_url: str | None, base_url: str | None,
            context: str, description: str | None = None) -> int:
    """Post the commit status (pending, final, or error) and, when final, upsert the PR comment.

    `error` is the final status of a run that produced nothing to read (a broken or aborted
    build, a platform without an agent): `description` says why.
    """
    token = secrets.require(secrets.GITHUB_TOKEN)
    if state == "pending":
        outcome = Outcome("pending", cut(description or "performance experiment running"),
                          None)
    elif state == "error":
        if not description:
            raise HarnessError("--state error needs --description (why there is no verdict).")
        outcome = Outcome("error", cut(description), None)
    elif verdict_dir is None:
        raise HarnessError("--state final needs --verdict-dir (the `harness compare` output).")
    else:
        outcome = outcome_from(Path(verdict_dir))
    client = _client(token, base_url)
    where = base_url or DEFAULT_BASE_URL
    try:
        remote = client.get_repo(repo)
        posted = remote.get_commit(sha).create_status(
            state=outcome.state, description=outcome.description, context=context,
            **({"target_url": report_url} if report_url else {}),
        )
        if not isinstance(posted.raw_data, dict) or posted.raw_data.get("state") != outcome.state:
            raise ValueError("the answer to the status POST is not a commit status")
        print(f"github: {repo}@{sha[:12]} {context} -> {outcome.state}: {outcome.description}")
        if outcome.comment is not None and pr_number is not None:
            done = upsert_comment(remote.get_issue(pr_number), outcome.comment,
                                  _own_login(client))
            print(f"github: PR #{pr_number} comment {done}")
    except GithubException as exc:
        raise _service_error(exc, f"{repo}@{sha[:12]}") from exc
    except requests.RequestException as exc:
        raise ServiceError(secrets.redact(f"{repo}@{sha[:12]}: GitHub at {where} could not be "
                                          f"reached ({type(exc).__name__}); check --base-url "
                                          f"and the agent's network or proxy.")) from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # PyGithub turns a 200 that is not JSON (a proxy's or SSO login page) into odd objects.
        raise ServiceError(secrets.redact(f"{repo}@{sha[:12]}: {where} answered with something "
                                          f"that is not GitHub's JSON API ({type(exc).__name__}); "
                                          f"check --base-url (GitHub Enterprise: "
                                          f"https://HOST/api/v3) and any proxy in "
                                          f"between.")) from exc
    finally:
        client.close()
    return int(ExitCode.OK)
