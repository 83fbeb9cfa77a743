"""The history store: nightly results as series per experiment, platform, metric and endpoint.

Nightly results.json files (from a directory or from a Jenkins job's archived artifacts) are
reduced to one value per metric and run (the median of the valid rounds; instructions per request
per endpoint from the instruction tier) and kept in SQLite, indexed by experiment, platform,
metric, endpoint, commit and build. `sync()` is `harness history sync`; harness.trends finds the
steps in the series.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import stats
from harness.baseline import ARTIFACT_TEMPLATE  # the nightly's artifacts, as baselines read them
from harness.compare import INSTRUCTIONS_METRIC, resolve_policies
from harness.errors import HarnessError, ResultsFormatError
from harness.metrics import METRICS
from harness.results import Results, load_results

# Schema history (stored in the meta table as schema_version):
#   1 (harness 0.2.0): runs + points.
SCHEMA_VERSION = 1
DEFAULT_DB = Path(".perf-cache") / "history.sqlite"
RESULTS_NAME = "results.json"
JENKINS_LIMIT = 30  # builds looked at per sync, newest first (one request each)
NIGHTLY_RESULTS = ("SUCCESS", "UNSTABLE")  # FAILURE/ABORTED builds may have measured nothing
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,      -- file path or jenkins:JOB#N:ARTIFACT; sync skips known ones
    experiment TEXT NOT NULL,
    experiment_path TEXT NOT NULL,
    platform TEXT NOT NULL,
    commit_id TEXT,
    build INTEGER,
    built_at TEXT NOT NULL,           -- ISO 8601, UTC; the series' order
    url TEXT
);
CREATE TABLE IF NOT EXISTS points (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    endpoint TEXT NOT NULL,           -- '' for whole-round metrics
    step TEXT NOT NULL,               -- rate step of a sweep ('5' req/s), '' without one
    value REAL NOT NULL,
    rounds INTEGER NOT NULL,          -- values the median was taken over
    gate INTEGER NOT NULL,
    min_change REAL NOT NULL,
    PRIMARY KEY (run_id, metric, endpoint, step)
);
CREATE TABLE IF NOT EXISTS posted (   -- steps a nightly already announced (harness.nightly)
    experiment TEXT NOT NULL, platform TEXT NOT NULL, metric TEXT NOT NULL,
    endpoint TEXT NOT NULL, step TEXT NOT NULL,
    first_bad_at TEXT NOT NULL,       -- built_at of the step's first point at the new level
    commit_id TEXT,
    posted_at TEXT NOT NULL,
    PRIMARY KEY (experiment, platform, metric, endpoint, step, first_bad_at)
);
CREATE INDEX IF NOT EXISTS runs_series ON runs (experiment, platform, built_at, build);
CREATE INDEX IF NOT EXISTS runs_commit ON runs (commit_id);
CREATE INDEX IF NOT EXISTS points_metric ON points (metric, endpoint, step);
"""


@dataclass(frozen=True)
class Run:
    """One nightly result: where it came from and what it measured."""

    source: str
    experiment: str
    experiment_path: str
    platform: str
    commit: str | None
    build: int | None
    built_at: str
    url: str | None = None


@dataclass(frozen=True)
class Point:
    """One metric's value in one run."""

    metric: str
    endpoint: str
    step: str
    value: float
    rounds: int
    gate: bool
    min_change: float


@dataclass(frozen=True)
class SeriesKey:
    """What one series is of."""

    experiment: str
    platform: str
    metric: str
    endpoint: str = ""
    step: str = ""

    @property
    def name(self) -> str:
        """metric[endpoint]@step/s, as compare names its keys."""
        text = self.metric + (f"[{self.endpoint}]" if self.endpoint else "")
        return text + (f"@{self.step}/s" if self.step else "")


@dataclass(frozen=True)
class Entry:
    """One point of a series with its run's identity."""

    value: float
    commit: str | None
    build: int | None
    built_at: str
    url: str | None

# ---------------------------------------------------------------------------------------------
# The store


class HistoryStore:
    """The SQLite file; use as a context manager (commits on success, rolls back on error)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise HarnessError(f"{self.path}: not a history database ({exc}); pass another "
                               f"--db or delete the file and sync again.") from exc
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.db.commit()
        elif int(row[0]) != SCHEMA_VERSION:
            raise HarnessError(f"{self.path}: history schema version {row[0]}, this harness uses "
                               f"{SCHEMA_VERSION}; delete the file and sync again.")

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.db.commit()
        else:
            self.db.rollback()
        self.db.close()

    def known(self, source: str) -> bool:
        return self.db.execute("SELECT 1 FROM runs WHERE source = ?", (source,)).fetchone() \
            is not None

    def add(self, run: Run, points: list[Point]) -> None:
        """Store one run and its points in one transaction (a run is never half-stored)."""
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO runs (source, experiment, experiment_path, platform, commit_id, "
                "build, built_at, url) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run.source, run.experiment, run.experiment_path, run.platform, run.commit,
                 run.build, run.built_at, run.url))
            self.db.executemany(
                "INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(cursor.lastrowid, p.metric, p.endpoint, p.step, p.value, p.rounds, int(p.gate),
                  p.min_change) for p in points])

    def keys(self, *, experiment: str | None = None, platform: str | None = None,
             metric: str | None = None, gated_only: bool = True) -> list[SeriesKey]:
        """Every series in the store, filtered; a series is gated if its newest point is."""
        rows = self.db.execute(
            "SELECT r.experiment, r.platform, p.metric, p.endpoint, p.step, p.gate "
            "FROM points p JOIN runs r ON r.id = p.run_id ORDER BY r.built_at, r.build").fetchall()
        gate: dict[SeriesKey, bool] = {}
        for exp, plat, name, endpoint, step, gated in rows:
            gate[SeriesKey(exp, plat, name, endpoint, step)] = bool(gated)
        return sorted(
            (k for k, g in gate.items()
             if (experiment is None or k.experiment == experiment)
             and (platform is None or k.platform == platform)
             and (metric is None or k.metric == metric)
             and (g or not gated_only)),
            key=lambda k: (k.experiment, k.platform, _metric_order(k.metric), k.endpoint,
                           _step_order(k.step)))

    def series(self, key: SeriesKey) -> tuple[list[Entry], str, bool, float]:
        """The series' entries, oldest first, with the newest run's experiment path and policy."""
        rows = self.db.execute(
            "SELECT p.value, r.commit_id, r.build, r.built_at, r.url, r.experiment_path, p.gate, "
            "p.min_change FROM points p JOIN runs r ON r.id = p.run_id "
            "WHERE r.experiment = ? AND r.platform = ? AND p.metric = ? AND p.endpoint = ? "
            "AND p.step = ? ORDER BY r.built_at, r.build",
            (key.experiment, key.platform, key.metric, key.endpoint, key.step)).fetchall()
        entries = [Entry(float(v), c, b, t, u) for v, c, b, t, u, *_ in rows]
        last = rows[-1]
        return entries, str(last[5]), bool(last[6]), float(last[7])

    def posted_times(self, key: SeriesKey) -> list[str]:
        """built_at of the first bad point of every step already announced for this series."""
        rows = self.db.execute(
            "SELECT first_bad_at FROM posted WHERE experiment = ? AND platform = ? AND "
            "metric = ? AND endpoint = ? AND step = ?",
            (key.experiment, key.platform, key.metric, key.endpoint, key.step)).fetchall()
        return [str(r[0]) for r in rows]

    def mark_posted(self, key: SeriesKey, entry: Entry, posted_at: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO posted VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key.experiment, key.platform, key.metric, key.endpoint, key.step,
                 entry.built_at, entry.commit, posted_at))

    def count_runs(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM runs").fetchone()[0])


def _metric_order(name: str) -> int:
    names = list(METRICS)
    return names.index(name) if name in names else len(names)


def _step_order(step: str) -> float:
    return float(step) if step else -1.0


# ---------------------------------------------------------------------------------------------
# From results to points


def points_from_results(results: Results) -> list[Point]:
    """One point per metric (and rate step) and per instruction-tier endpoint of a results file.

    Timing and counter metrics: the median of the valid rounds of instance 1 (the instance that
    received the load); instructions: the tier's per-request value per endpoint.
    """
    policies = resolve_policies(results)
    steps = {r.step for r in results.rounds if r.instance == 1}
    values: dict[tuple[str, str], list[float]] = {}
    for rnd in results.rounds:
        if not rnd.valid or rnd.instance != 1:
            continue
        step = f"{rnd.step:g}" if len(steps) > 1 and rnd.step is not None else ""
        for name, value in rnd.summary.items():
            if name in METRICS and isinstance(value, (int, float)) and math.isfinite(value):
                values.setdefault((name, step), []).append(float(value))
    points = [Point(name, "", step, stats.median(vals), len(vals), policies[name].gate,
                    policies[name].min_change)
              for (name, step), vals in sorted(values.items())]
    tier = results.instructions or {}
    policy = policies[INSTRUCTIONS_METRIC]
    for endpoint, entry in sorted((tier.get("endpoints") or {}).items()):
        value = entry.get("per_request") if isinstance(entry, dict) else None
        runs = value if isinstance(value, list) else [value]
        numbers = [float(v) for v in runs if isinstance(v, (int, float)) and math.isfinite(v)]
        if numbers:
            points.append(Point(INSTRUCTIONS_METRIC, str(endpoint), "", stats.median(numbers),
                                len(numbers), policy.gate, policy.min_change))
    return points


def _build_number(url: str | None) -> int | None:
    match = re.search(r"/(\d+)/?$", url or "")
    return int(match.group(1)) if match else None


def run_from_results(results: Results, *, source: str, build: int | None = None,
                     built_at: str | None = None, commit: str | None = None,
                     url: str | None = None) -> Run:
    """The run's identity: from the Jenkins build when known, else from the file itself."""
    env = results.environment
    url = url or env.get("jenkins_build_url")
    return Run(source=source, experiment=results.experiment.name,
               experiment_path=results.experiment.path, platform=str(env.get("platform", "?")),
               commit=commit or env.get("subject_commit"),
               build=build if build is not None else _build_number(url),
               built_at=built_at or results.created_at, url=url)


@dataclass(frozen=True)
class SyncReport:
    """What a sync did: runs added, already known, and files skipped with the reason."""

    added: tuple[str, ...] = ()
    known: int = 0
    skipped: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"history: {len(self.added)} new run(s), {self.known} already stored"]
        out += [f"history: skipped {reason}" for reason in self.skipped]
        return out


def _record_beside(path: Path) -> dict[str, Any]:
    """A `harness baseline fetch` record beside the file names its build; {} without one."""
    record = path.parent / "baseline.json"
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("status") == "found" else {}


def sync_directory(store: HistoryStore, directory: Path) -> SyncReport:
    """Add every results.json under `directory` not stored yet; damaged files are skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise HarnessError(f"--from-dir {directory}: no such directory; pass the folder that "
                           f"holds the nightly results.json files.")
    added, skipped, known = [], [], 0
    for path in sorted(directory.rglob(RESULTS_NAME)):
        source = str(path.resolve())
        if store.known(source):
            known += 1
            continue
        try:
            results = load_results(path)
        except ResultsFormatError as exc:
            skipped.append(str(exc))
            continue
        record = _record_beside(path)
        run = run_from_results(results, source=source, build=record.get("build"),
                               built_at=record.get("built_at"), commit=record.get("commit"),
                               url=record.get("url"))
        store.add(run, points_from_results(results))
        added.append(source)
    return SyncReport(tuple(added), known, tuple(skipped))


def artifact_pattern(template: str) -> re.Pattern[str]:
    """A regular expression for the artifact paths a template names ({platform}, {experiment}
    match one path part each)."""
    parts = re.split(r"(\{platform\}|\{experiment\})", template)
    return re.compile("".join("[^/]+" if p in ("{platform}", "{experiment}") else re.escape(p)
                              for p in parts) + "$")


def sync_jenkins(store: HistoryStore, service: Any, job: str, *, limit: int = JENKINS_LIMIT,
                 current: int | None = None, artifact: str = ARTIFACT_TEMPLATE,
                 log: Callable[[str], None] = lambda line: None) -> SyncReport:
    """Add the results.json artifacts of the job's newest finished builds not stored yet.

    `service` is a harness.jenkins.JenkinsService. Builds that FAILED or were ABORTED are passed
    over (their measurements may be incomplete); so are artifacts that are not results files and
    builds still running, except build `current`: the nightly that runs the sync itself, after
    archiving its results.
    """
    added, skipped, known = [], [], 0
    pattern = artifact_pattern(artifact)
    for build in service.builds(job, limit=limit):
        running_self = build.result is None and build.number == current
        if build.result not in NIGHTLY_RESULTS and not running_self:
            continue
        for path in build.artifacts:
            if not pattern.fullmatch(path):
                continue
            source = f"jenkins:{job}#{build.number}:{path}"
            if store.known(source):
                known += 1
                continue
            data = service.artifact(job, build.number, path)
            where = f"{build.url}artifact/{path}"
            try:
                results = Results.from_json(json.loads(data), source=where)
            except (ValueError, ResultsFormatError) as exc:
                skipped.append(f"{where}: {exc}")
                continue
            run = run_from_results(results, source=source, build=build.number,
                                   built_at=build.timestamp.isoformat(timespec="seconds"),
                                   commit=build.commit, url=build.url)
            store.add(run, points_from_results(results))
            added.append(source)
            log(f"history: stored {job} #{build.number} {path}")
    return SyncReport(tuple(added), known, tuple(skipped))

# ---------------------------------------------------------------------------------------------
# The command

def sync(*, db: Path, from_dir: Path | None = None, jenkins_job: str | None = None,
         jenkins_url: str | None = None, limit: int = JENKINS_LIMIT, current: int | None = None,
         artifact: str | None = None, service: Any = None,
         log: Callable[[str], None] = print) -> SyncReport:
    """`harness history sync`: add new nightly results from a directory or a Jenkins job."""
    if (from_dir is None) == (jenkins_job is None):
        raise HarnessError("history sync: pass exactly one of --from-dir DIR and --jenkins JOB.")
    with HistoryStore(db) as store:
        if from_dir is not None:
            report = sync_directory(store, from_dir)
        else:
            if service is None:
                from harness.jenkins import JenkinsService

                service = JenkinsService.from_environment(jenkins_url)
            report = sync_jenkins(store, service, str(jenkins_job), limit=limit, current=current,
                                  artifact=artifact or ARTIFACT_TEMPLATE, log=log)
        for line in report.lines():
            log(line)
        log(f"history: {store.count_runs()} run(s) in {db}")
    return report
