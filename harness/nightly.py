"""Nightly announcements: new steps in gated series, posted once to the build and to GitHub.

After `harness history sync`, `post_new_steps` finds the steps that made a gated metric worse by
at least its minimum change and that no earlier nightly announced, writes them (each with the
`harness bisect` command that finds its commit) into the description of the running Jenkins build
and, when a repository is given, into one new GitHub issue; only then are they recorded as
announced, so a post that fails is tried again the next night.

A timing step's position may move by a point as later nights arrive; a step within one point of
an announced one counts as announced.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import secrets
from harness.changepoint import Step
from harness.errors import HarnessError, ServiceError
from harness.history import HistoryStore
from harness.trends import SeriesAnalysis, analyse, new_steps, step_line

JOB_VARIABLE = "JOB_NAME"  # set by Jenkins in every build
BUILD_VARIABLE = "BUILD_NUMBER"
MAX_DESCRIPTION = 20_000  # characters; Jenkins stores more, but a build page should stay readable


@dataclass(frozen=True)
class NewStep:
    """A step to announce: the series, the step and the command that bisects it."""

    analysis: SeriesAnalysis
    step: Step
    command: str | None

    @property
    def title(self) -> str:
        key = self.analysis.key
        change = "from 0" if self.step.change is None else f"{self.step.change:+.1%}"
        return f"{key.experiment} / {key.platform} / {key.name} {change}"

    def text(self) -> str:
        line = f"{self.title}: {step_line(self.analysis, self.step)}"
        return line + (f"\n  bisect: {self.command}" if self.command else
                       "\n  (no bisect command: the commits of the runs are not recorded)")


@dataclass(frozen=True)
class Announcement:
    """What was posted, for the command to print."""

    steps: tuple[NewStep, ...]
    description: str | None  # "JOB #N" when a build description was set
    issue: str | None  # the issue's URL when one was opened


def unannounced(store: HistoryStore, analyses: list[SeriesAnalysis]) -> list[NewStep]:
    """Steps worth announcing that no earlier nightly announced."""
    found = []
    for analysis, step, command in new_steps(analyses):
        entries = analysis.entries
        low = entries[max(0, step.previous - 1)].built_at
        high = entries[min(len(entries) - 1, step.index + 1)].built_at
        if any(low <= t <= high for t in store.posted_times(analysis.key)):
            continue
        found.append(NewStep(analysis, step, command))
    return found


def description_html(steps: list[NewStep], *, report_url: str | None = None) -> str:
    """The build description: escaped text in <pre>, which Jenkins' safe markup shows as is."""
    body = "\n".join(s.text() for s in steps)
    head = f"Performance history: {len(steps)} new step(s) in gated metrics"
    link = f'\n<a href="{html.escape(report_url)}">trend plots</a>' if report_url else ""
    text = f"<b>{html.escape(head)}</b>\n<pre>{html.escape(body)}</pre>{link}"
    return text[:MAX_DESCRIPTION]


def issue_markdown(steps: list[NewStep], *, build: str | None = None) -> tuple[str, str]:
    """Title and body of the GitHub issue."""
    title = (f"Performance: {steps[0].title}" if len(steps) == 1 else
             f"Performance: {len(steps)} steps in gated metrics")
    lines = [f"The nightly history{f' ({build})' if build else ''} shows these steps in gated "
             "metrics. Each `harness bisect` command finds the first commit that made it worse.",
             ""]
    for step in steps:
        lines.append(f"* **{step.title}**: {step_line(step.analysis, step.step)}")
        if step.command:
            lines.append(f"  ```\n  {step.command}\n  ```")
    return title, "\n".join(lines) + "\n"


def _current_build(environ: dict[str, str]) -> tuple[str, int]:
    job, number = environ.get(JOB_VARIABLE), environ.get(BUILD_VARIABLE)
    if not job or not number or not number.isdigit():
        raise HarnessError(f"--post needs the running build: {JOB_VARIABLE} and {BUILD_VARIABLE} "
                           f"are set by Jenkins; outside Jenkins set both, or drop --post.")
    return job, int(number)


def open_issue(repo: str, title: str, body: str, *, base_url: str | None) -> str:
    """One new issue on GitHub through harness.github's client setup; returns its URL."""
    from github import GithubException

    from harness.github import _client  # the one configured PyGithub client of the project

    token = secrets.require(secrets.GITHUB_TOKEN)
    client = _client(token, base_url)
    try:
        issue = client.get_repo(repo).create_issue(title=title, body=body)
        return str(issue.html_url)
    except GithubException as exc:
        raise ServiceError(secrets.redact(
            f"{repo}: GitHub answered {exc.status} when opening the issue; check --github-repo "
            f"and that {secrets.GITHUB_TOKEN} may open issues there.")) from exc
    finally:
        client.close()


def post_new_steps(*, db: Path, jenkins: Any, github_repo: str | None = None,
                   github_base_url: str | None = None, report_url: str | None = None,
                   environ: dict[str, str] | None = None,
                   log: Callable[[str], None] = print) -> Announcement:
    """Announce unannounced steps (module doc); `jenkins` is a harness.jenkins.JenkinsService."""
    from harness.jenkins import set_build_description

    job, number = _current_build(dict(os.environ if environ is None else environ))
    with HistoryStore(db) as store:
        steps = unannounced(store, analyse(store))
        if not steps:
            log("history: no new step in a gated metric")
            return Announcement((), None, None)
        for step in steps:
            log(f"history: new step: {step.text()}")
        set_build_description(jenkins, job, number,
                              description_html(steps, report_url=report_url))
        described = f"{job} #{number}"
        log(f"history: described {described}")
        issue = None
        if github_repo:
            title, body = issue_markdown(steps, build=described)
            issue = open_issue(github_repo, title, body, base_url=github_base_url)
            log(f"history: opened {issue}")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for step in steps:
            store.mark_posted(step.analysis.key, step.analysis.entries[step.step.index], now)
    return Announcement(tuple(steps), described, issue)


def run_nightly(*, db: Path, from_dir: Path | None, jenkins_job: str | None,
                jenkins_url: str | None, limit: int, artifact: str | None, github_repo: str | None,
                github_base_url: str | None, report_url: str | None,
                service: Any = None, environ: dict[str, str] | None = None,
                log: Callable[[str], None] = print) -> Announcement:
    """`harness history sync ... --post`: sync, then announce the new steps."""
    from harness.history import sync
    from harness.jenkins import JenkinsService

    environ = dict(os.environ if environ is None else environ)
    job, number = _current_build(environ)
    service = service or JenkinsService.from_environment(jenkins_url)
    # When the nightly itself runs the sync, its own archived results count already.
    sync(db=db, from_dir=from_dir, jenkins_job=jenkins_job, limit=limit, artifact=artifact,
         service=service, current=number if jenkins_job == job else None, log=log)
    return post_new_steps(db=db, jenkins=service, github_repo=github_repo,
                          github_base_url=github_base_url, report_url=report_url,
                          environ=environ, log=log)
