"""Feedback on GitHub: a commit status on the PR head and one PR comment updated in place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import github
import requests
from github import Auth, GithubException

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


def _client(token: str, base_url: str | None) -> github.Github:
    return github.Github(
        auth=Auth.Token(token), base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
        timeout=30, retry=github.GithubRetry(total=3, backoff_factor=1.0), lazy=True,
        seconds_between_writes=WRITE_INTERVAL, seconds_between_requests=REQUEST_INTERVAL,
    )


def upsert_comment(issue, body: str) -> str:
    """Edit the comment carrying the marker, or create it; returns "updated" or "created"."""
    text = f"{MARKER}\n{body}"
    for index, comment in enumerate(issue.get_comments()):
        if index >= MAX_COMMENTS:
            break
        if MARKER in (comment.body or ""):
            comment.edit(text)
            return "updated"
    issue.create_comment(text)
    return "created"


def _service_error(exc: GithubException, what: str) -> ServiceError:
    message = exc.data.get("message") if isinstance(exc.data, dict) else None
    hint = ""
    if exc.status == 401:
        hint = f" Check that {secrets.GITHUB_TOKEN} holds a valid token."
    elif exc.status == 404:
        hint = " Check --repo, --pr and --base-url, and that the token can see the repository."
    return ServiceError(secrets.redact(f"{what}: GitHub answered {exc.status} "
                                       f"({message or 'no message'}).{hint}"))


def publish(*, repo: str, sha: str, pr_number: int | None, state: str,
            verdict_dir: Path | None, report_url: str | None, base_url: str | None,
            context: str) -> int:
    """Post the commit status (pending or final) and, when final, upsert the PR comment."""
    token = secrets.require(secrets.GITHUB_TOKEN)
    if state == "pending":
        outcome = Outcome("pending", "performance experiment running", None)
    elif verdict_dir is None:
        raise HarnessError("--state final needs --verdict-dir (the `harness compare` output).")
    else:
        outcome = outcome_from(Path(verdict_dir))
    client = _client(token, base_url)
    try:
        remote = client.get_repo(repo)
        remote.get_commit(sha).create_status(
            state=outcome.state, description=outcome.description, context=context,
            **({"target_url": report_url} if report_url else {}),
        )
        print(f"github: {repo}@{sha[:12]} {context} -> {outcome.state}: {outcome.description}")
        if outcome.comment is not None and pr_number is not None:
            done = upsert_comment(remote.get_issue(pr_number), outcome.comment)
            print(f"github: PR #{pr_number} comment {done}")
    except GithubException as exc:
        raise _service_error(exc, f"{repo}@{sha[:12]}") from exc
    except requests.RequestException as exc:
        raise ServiceError(secrets.redact(f"{repo}@{sha[:12]}: GitHub at "
                                          f"{base_url or DEFAULT_BASE_URL} could not be reached "
                                          f"({type(exc).__name__}).")) from exc
    finally:
        client.close()
    return int(ExitCode.OK)
