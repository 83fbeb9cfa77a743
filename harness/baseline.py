"""Baselines from Jenkins: the newest good nightly artifact for one experiment and platform.

A baseline is usable when its build is SUCCESS (UNSTABLE is not), it archived the artifact at the
expected relative path, it is younger than the maximum age, and its commit is an ancestor of the
candidate's. The choice and every refused build are recorded in `baseline.json` beside the
downloaded file, so the report can say which nightly it compared with.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from harness.environment import git_commit, platform_name
from harness.errors import ExitCode, HarnessError, ServiceError
from harness.files import atomic_write_bytes, atomic_write_json
from harness.jenkins import Build, JenkinsService, NotFound

RECORD_NAME = "baseline.json"
RECORD_VERSION = 1  # 1: first version (status, job, build, commit, url, artifact, reasons)
ARTIFACT_TEMPLATE = "perf/{platform}/{experiment}/results.json"
MAX_BUILDS = 30  # builds looked at, newest first: one request each, so the loop is bounded

Status = Literal["found", "no-baseline", "refused"]


@dataclass(frozen=True)
class BaselineRecord:
    """What was chosen (or why nothing was), as written to baseline.json."""

    status: Status
    job: str
    artifact: str
    jenkins_url: str
    build: int | None = None
    commit: str | None = None
    url: str | None = None
    built_at: str | None = None
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["format_version"] = RECORD_VERSION
        return data

    @property
    def summary(self) -> str:
        """One line for logs, the report and the PR comment."""
        if self.status == "found":
            commit = (self.commit or "unknown commit")[:12]
            return f"baseline: {self.job} #{self.build} (commit {commit}, built {self.built_at})"
        head = "no baseline" if self.status == "no-baseline" else "no usable baseline"
        return f"{head} in {self.job} for {self.artifact}: " + "; ".join(self.reasons)


def load_record(path: Path) -> BaselineRecord | None:
    """Read a baseline.json (or the one beside a results.json); None when there is none."""
    path = Path(path)
    if path.name != RECORD_NAME:
        path = path.parent / RECORD_NAME
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("format_version", None)
    data["reasons"] = tuple(data.get("reasons", ()))
    return BaselineRecord(**data)


def is_ancestor(commit: str, candidate: str, cwd: Path | None = None) -> bool | None:
    """True/False from `git merge-base --is-ancestor`; None when git cannot tell."""
    try:
        proc = subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, candidate],
            cwd=cwd, capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: True, 1: False}.get(proc.returncode)


def _refusal(build: Build, *, artifact: str, oldest: datetime, candidate: str | None,
             cwd: Path | None) -> str | None:
    """Why this build cannot serve as the baseline, or None when it can."""
    label = f"#{build.number}"
    if build.result != "SUCCESS":
        return f"{label} is {build.result or 'still running'}, not SUCCESS"
    if artifact not in build.artifacts:
        return f"{label} archived no {artifact}"
    if build.timestamp < oldest:
        return f"{label} was built {build.timestamp:%Y-%m-%d}, older than the maximum age"
    if candidate and build.commit:
        ancestor = is_ancestor(build.commit, candidate, cwd)
        if ancestor is None:
            return (f"{label}'s commit {build.commit[:12]} is not in this clone "
                    f"(fetch main with history to check ancestry)")
        if not ancestor:
            return f"{label}'s commit {build.commit[:12]} is not an ancestor of {candidate[:12]}"
    return None


def choose_build(
    service: JenkinsService, *, job: str, artifact: str, max_age: timedelta,
    candidate: str | None, now: datetime, cwd: Path | None = None,
) -> tuple[Build | None, list[str]]:
    """The newest usable build and the reasons every newer one was refused."""
    oldest = now - max_age
    reasons: list[str] = []
    for build in service.builds(job, limit=MAX_BUILDS):
        if build.result is None:
            continue  # still running: neither a baseline nor worth a sentence
        reason = _refusal(build, artifact=artifact, oldest=oldest, candidate=candidate, cwd=cwd)
        if reason is None:
            return build, reasons
        reasons.append(reason)
        if build.timestamp < oldest:
            break  # every later build in the list is older still
    return None, reasons


def _candidate_commit(given: str | None, repo: Path) -> str | None:
    return given or os.environ.get("GIT_COMMIT") or git_commit(repo)


def _origin_url(repo: Path) -> str | None:
    """The clone URL of `repo`'s origin: picks the project's checkout among a build's records."""
    try:
        proc = subprocess.run(["git", "remote", "get-url", "origin"], cwd=repo,
                              capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def fetch_baseline(
    *, job: str, out_dir: Path, experiment: str, platform: str | None,
    jenkins_url: str | None, max_age_days: float, candidate_commit: str | None, strict: bool,
    artifact: str | None = None, service: JenkinsService | None = None,
    now: datetime | None = None, repo: Path | None = None, allow_missing_job: bool = False,
) -> int:
    """Download the baseline into out_dir (file + baseline.json); exit code per DESIGN 4.1.

    No usable build exits 0 with a clear message (1 with `strict`), and leaves no results file
    behind so later steps cannot compare with a stale one. A job Jenkins answers 404 for is an
    error (fail closed: it may exist but be hidden from this user) unless `allow_missing_job`.
    `repo` is the candidate's git checkout (default: the current directory): the ancestry
    check runs there, so the fetch itself may run from another (trusted) checkout.
    """
    platform = platform or platform_name()
    relative = (artifact or ARTIFACT_TEMPLATE).format(platform=platform, experiment=experiment)
    service = service or JenkinsService.from_environment(jenkins_url)
    repo = Path(repo) if repo is not None else Path.cwd()
    service.remote = service.remote or _origin_url(repo)
    out_dir = Path(out_dir)
    target = out_dir / Path(relative).name
    target.unlink(missing_ok=True)
    (out_dir / RECORD_NAME).unlink(missing_ok=True)
    candidate = _candidate_commit(candidate_commit, repo)
    status: Status = "refused"
    try:
        build, reasons = choose_build(
            service, job=job, artifact=relative, max_age=timedelta(days=max_age_days),
            candidate=candidate, now=now or datetime.now(timezone.utc), cwd=repo,
        )
    except NotFound as exc:
        if not allow_missing_job:
            raise ServiceError(f"{exc} Pass --allow-missing-job only while the nightly job "
                               f"has really not been created yet.") from exc
        build, status = None, "no-baseline"
        reasons = [f"Jenkins answered 404 for job {job}; --allow-missing-job reads that as "
                   f"'not created yet'"]
    if build is None:
        if not reasons:
            status, reasons = "no-baseline", ["the job has no finished build yet"]
        record = BaselineRecord(status=status, job=job, artifact=relative,
                                jenkins_url=service.url, reasons=tuple(reasons))
        atomic_write_json(out_dir / RECORD_NAME, record.to_json())
        print(record.summary)
        return int(ExitCode.ERROR if strict else ExitCode.OK)
    data = service.artifact(job, build.number, relative)
    try:
        json.loads(data)
    except ValueError as exc:
        raise HarnessError(f"{build.url}artifact/{relative}: not JSON ({exc}); the nightly "
                           f"archived a damaged file, re-run it.") from exc
    atomic_write_bytes(target, data)
    record = BaselineRecord(
        status="found", job=job, artifact=relative, jenkins_url=service.url, build=build.number,
        commit=build.commit, url=build.url, built_at=build.timestamp.isoformat(timespec="seconds"),
        reasons=tuple(reasons),
    )
    atomic_write_json(out_dir / RECORD_NAME, record.to_json())
    print(f"{record.summary} -> {target}")
    return int(ExitCode.OK)
