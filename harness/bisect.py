"""`harness bisect GOOD BAD`: the first commit between two refs that made the experiment worse.

The evidence is chosen once, by measuring BAD against GOOD: if the instruction tier shows a gated
regression (instructions per request, exact to about 0.003% under valgrind), every step is judged
on instructions alone, GOOD measured once as the reference (its count does not vary between runs).
Otherwise the gated timing metrics that regressed decide, and every step is an interleaved
`harness perf` session of GOOD against the commit (harness.perf.run_session), which adds rounds
while the verdict is borderline, up to the step's time budget.

Each commit's code is checked out with harness.worktree.baseline_checkout, as `harness perf` does
for its baseline, and judged with harness.compare.compare(). Every finished step is appended to a
JSON-lines log in the output folder before the next one starts, so running the same command again
after Ctrl-C (or an aborted build) resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.compare import Comparison, compare
from harness.errors import ConfigError, ExitCode, HarnessError
from harness.experiment import Experiment, InstructionTier, load_experiment
from harness.files import atomic_write_json, atomic_write_text
from harness.instructions import run_instruction_tier
from harness.perf import DEFAULT_EXPERIMENT, Side, run_session
from harness.process import sigterm_as_interrupt
from harness.results import Results
from harness.runner import build_results
from harness.sides import environment_spec
from harness.units import parse_duration
from harness.worktree import Checkout, baseline_checkout, project_root, resolve_commit

# bisect-log.jsonl format_version history:
#   1 (harness 0.2.0): first version (start, reference, step lines).
LOG_VERSION = 1
LOG_NAME = "bisect-log.jsonl"
REPORT_JSON = "bisect.json"
REPORT_MD = "bisect.md"
Evidence = Literal["instructions", "timing"]
INSTRUCTIONS: Evidence = "instructions"
TIMING: Evidence = "timing"
Verdict = Literal["good", "bad", "inconclusive"]


@dataclass(frozen=True)
class Measurement:
    """One commit judged against GOOD: the verdict and the values of the deciding metrics.

    `values` maps metric keys to {"good": GOOD's value, "value": this commit's, "change": relative,
    "verdict": compare's verdict}.
    """

    commit: str
    evidence: Evidence
    verdict: Verdict
    overall: str  # compare's overall verdict
    values: dict[str, dict[str, Any]]
    reason: str
    seconds: float
    instructions: dict[str, Any] | None = None  # the commit's tier data (instruction evidence)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(commit=str(data["commit"]), evidence=data["evidence"],
                   verdict=data["verdict"], overall=str(data["overall"]),
                   values=dict(data.get("values") or {}), reason=str(data.get("reason", "")),
                   seconds=float(data.get("seconds", 0.0)), instructions=data.get("instructions"))


@dataclass(frozen=True)
class BisectOutcome:
    """What a bisection found; written as bisect.json and bisect.md."""

    good: str
    bad: str
    experiment: str
    commits: tuple[str, ...]  # GOOD..BAD, oldest first, BAD last
    evidence: Evidence | None
    keys: tuple[str, ...]  # the metric keys that decide
    steps: tuple[Measurement, ...]  # in the order they were measured (BAD first)
    first_bad: str | None
    subject: str | None  # the first bad commit's subject line
    change: dict[str, dict[str, Any]] = field(default_factory=dict)  # first bad vs its parent
    headline: str = ""
    resumed: int = 0  # steps taken from the log instead of measured
    subjects: dict[str, str] = field(default_factory=dict)  # commit -> subject line, measured ones

    @property
    def exit_code(self) -> int:
        """2 when the guilty commit is named (a regression, found), 0 when there is none to find,
        1 when the steps could not decide."""
        if self.first_bad:
            return int(ExitCode.REGRESSION)
        return int(ExitCode.ERROR if self.evidence else ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["format_version"] = 1  # 1: first version
        return data


# ---------------------------------------------------------------------------------------------
# The log


class BisectLog:
    """bisect-log.jsonl: a start line naming the bisection, then one line per finished step."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[Measurement]]:
        """The start line, the GOOD reference line and the steps; a torn last line is ignored."""
        if not self.path.exists():
            return None, None, []
        start, reference, steps = None, None, []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the line being written when the process was killed
            kind = entry.get("type") if isinstance(entry, dict) else None
            if kind == "start":
                if entry.get("log_version") != LOG_VERSION:
                    raise HarnessError(
                        f"{self.path}:{number}: log_version {entry.get('log_version')!r}, this "
                        f"harness writes {LOG_VERSION}; delete the log to start over.")
                start = entry
            elif kind == "reference":
                reference = entry
            elif kind == "step":
                steps.append(Measurement.from_json(entry["measurement"]))
        return start, reference, steps

    def append(self, entry: dict[str, Any]) -> None:
        """One line, flushed to disk before the next step starts."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


# ---------------------------------------------------------------------------------------------
# Git


def _git_out(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=120, check=False)
    except FileNotFoundError as exc:
        raise HarnessError("git is not installed; bisect needs git") from exc
    if proc.returncode != 0:
        raise HarnessError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def commit_range(root: Path, good: str, bad: str) -> list[str]:
    """Commits after GOOD up to BAD along BAD's first-parent line, oldest first (BAD last)."""
    ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", good, bad], cwd=root,
                              capture_output=True, check=False, timeout=60)
    if ancestor.returncode != 0:
        raise ConfigError(f"bisect: {good[:12]} is not an ancestor of {bad[:12]}; pass an older "
                          f"GOOD commit first, then the newer BAD one.")
    out = _git_out(root, "rev-list", "--first-parent", "--reverse", f"{good}..{bad}")
    commits = out.split()
    if not commits:
        raise ConfigError("bisect: GOOD and BAD are the same commit; nothing to bisect.")
    return commits


def subject_line(root: Path, commit: str) -> str:
    return _git_out(root, "log", "-1", "--format=%s", commit)


# ---------------------------------------------------------------------------------------------
# The search


def search(commits: list[str], judge: Callable[[str], Measurement],
           known: dict[str, Measurement]) -> tuple[int | None, list[Measurement], str]:
    """Binary search for the first bad commit; the last commit (BAD) is judged first.

    `known` holds measurements from the log (taken instead of judging again). Returns the index of
    the first bad commit (None when BAD is not bad or a step could not decide), the measurements
    in the order they were needed, and why the search stopped.
    """
    order: list[Measurement] = []

    def measured(commit: str) -> Measurement:
        result = known.get(commit) or judge(commit)
        order.append(result)
        return result

    last = measured(commits[-1])
    if last.verdict == "good":
        return None, order, "BAD is not worse than GOOD by the gate's standards: nothing to bisect"
    if last.verdict == "inconclusive":
        return None, order, f"BAD could not be judged against GOOD: {last.reason}"
    low, high = -1, len(commits) - 1  # low: last known good (-1 is GOOD), high: first known bad
    while high - low > 1:
        middle = (low + high) // 2
        step = measured(commits[middle])
        if step.verdict == "inconclusive":
            return None, order, (f"{commits[middle][:12]} could not be judged ({step.reason}); "
                                 f"the first bad commit lies after {_name(commits, low)} and at "
                                 f"or before {commits[high][:12]}")
        if step.verdict == "bad":
            high = middle
        else:
            low = middle
    return high, order, "found"


def _name(commits: list[str], index: int) -> str:
    return "GOOD" if index < 0 else commits[index][:12]


# ---------------------------------------------------------------------------------------------
# Judging one commit


def _decisive(comparison: Comparison, evidence: Evidence) -> list[str]:
    """Gated metrics of the evidence's kind that regressed."""
    wanted = "counter" if evidence == INSTRUCTIONS else TIMING
    return [m.key for m in comparison.gated if m.verdict == "regression" and m.kind == wanted
            and ((m.metric == "instructions_per_request") == (evidence == INSTRUCTIONS))]


def measurement_from(commit: str, comparison: Comparison, *, evidence: Evidence,
                     keys: list[str], seconds: float,
                     instructions: dict[str, Any] | None = None) -> Measurement:
    """Bad when any deciding key regressed; good when none regressed and none is inconclusive."""
    rows = {m.key: m for m in comparison.metrics if m.key in keys}
    verdict: Verdict
    values = {key: {"good": m.baseline, "value": m.candidate, "change": m.change,
                    "verdict": m.verdict} for key, m in rows.items()}
    verdicts = [m.verdict for m in rows.values()]
    if not keys and comparison.overall not in ("invalid", "refused"):
        verdict, reason = "good", f"no gated metric of this kind regressed ({comparison.headline})"
    elif comparison.overall in ("invalid", "refused") or not rows:
        verdict = "inconclusive"
        reason = comparison.headline if rows else f"none of {', '.join(keys)} was measured"
    elif "regression" in verdicts:
        verdict, reason = "bad", "; ".join(f"{k} {m.change:+.3%}: {m.reason}"
                                           for k, m in rows.items()
                                           if m.verdict == "regression" and m.change is not None)
    elif "inconclusive" in verdicts:
        verdict = "inconclusive"
        reason = "; ".join(f"{k}: {m.reason}" for k, m in rows.items()
                           if m.verdict == "inconclusive")
    else:
        verdict, reason = "good", "; ".join(f"{k} {_pct(m.change)}: {m.verdict}"
                                            for k, m in rows.items())
    return Measurement(commit=commit, evidence=evidence, verdict=verdict,
                       overall=comparison.overall, values=values, reason=reason,
                       seconds=round(seconds, 1), instructions=instructions)


def _pct(change: float | None) -> str:
    return "n/a" if change is None else f"{change:+.3%}"


class Judge:
    """Measures commits against GOOD on this machine; holds GOOD's checkout and reference."""

    def __init__(self, *, root: Path, experiment: Experiment, good: Checkout, work_dir: Path,
                 budget: float, pairs: int, seed: int, log: Callable[[str], None]) -> None:
        self.root, self.experiment, self.good = root, experiment, good
        self.work_dir, self.log = work_dir, log
        self.budget, self.pairs, self.seed = budget, pairs, seed
        self.timing_experiment = dataclasses.replace(experiment, instructions=InstructionTier())
        self.reference: Results | None = None  # GOOD with its instruction counts
        self.evidence: Evidence | None = None
        self.keys: list[str] = []

    @contextlib.contextmanager
    def _checkout(self, commit: str) -> Iterator[Checkout]:
        with baseline_checkout(self.root, commit, cache=self.work_dir / "cache",
                               spec=environment_spec(self.experiment.subject)) as checkout:
            yield checkout

    def _results(self, checkout: Checkout, label: str, instructions: dict[str, Any]) -> Results:
        empty = build_results(self.experiment, [], label=label, project_root=checkout.root,
                              python=checkout.python)
        return dataclasses.replace(empty, instructions=instructions)

    def count(self, checkout: Checkout, label: str) -> dict[str, Any]:
        """The instruction tier of one checkout."""
        self.log(f"instruction counts under valgrind: {label}")
        data = run_instruction_tier(self.experiment, work_dir=self.work_dir / f"instr-{label}",
                                    project_root=checkout.root, python=checkout.python)
        if not data.get("available", True):
            raise HarnessError(f"the instruction tier cannot run here: {data.get('reason')}")
        return data

    def set_reference(self, instructions: dict[str, Any]) -> None:
        self.reference = self._results(self.good, "good", instructions)

    def by_instructions(self, commit: str, checkout: Checkout,
                        data: dict[str, Any] | None = None) -> tuple[Measurement, Comparison]:
        started = time.monotonic()
        assert self.reference is not None
        data = data or self.count(checkout, commit[:12])
        comparison = compare(self.reference, self._results(checkout, commit[:12], data))
        keys = self.keys or _decisive(comparison, INSTRUCTIONS)
        return measurement_from(commit, comparison, evidence=INSTRUCTIONS, keys=keys,
                                seconds=time.monotonic() - started, instructions=data), comparison

    def by_timing(self, commit: str, checkout: Checkout) -> tuple[Measurement, Comparison]:
        started = time.monotonic()
        sides = (Side("good", self.timing_experiment, self.good),
                 Side(commit[:12], self.timing_experiment, checkout))
        _, _, comparison, stop = run_session(
            sides, pairs=self.pairs, budget=self.budget, seed=self.seed,
            work_dir=self.work_dir / f"timing-{commit[:12]}", started=started, log=self.log)
        self.log(f"{commit[:12]}: {comparison.overall} ({stop})")
        keys = self.keys or _decisive(comparison, TIMING)
        return measurement_from(commit, comparison, evidence=TIMING, keys=keys,
                                seconds=time.monotonic() - started), comparison

    def __call__(self, commit: str) -> Measurement:
        """Judge one commit with the chosen evidence; the first call (BAD) chooses it."""
        with self._checkout(commit) as checkout:
            if self.evidence == INSTRUCTIONS:
                result = self.by_instructions(commit, checkout)[0]
            elif self.evidence == TIMING:
                result = self.by_timing(commit, checkout)[0]
            else:
                result = self.choose(commit, checkout)
        self.log(f"{commit[:12]}: {result.verdict} ({result.reason})")
        return result

    def choose(self, commit: str, checkout: Checkout) -> Measurement:
        """BAD against GOOD: instructions first, timing when instructions show no regression."""
        if self.experiment.instructions.enabled:
            result, comparison = self.by_instructions(commit, checkout)
            if result.verdict == "bad":
                self.evidence, self.keys = INSTRUCTIONS, _decisive(comparison, INSTRUCTIONS)
                return result
            self.log("instructions show no regression at BAD; bisecting on timing instead")
        result, comparison = self.by_timing(commit, checkout)
        self.evidence, self.keys = TIMING, _decisive(comparison, TIMING)
        return result


# ---------------------------------------------------------------------------------------------
# The command


def _parent_change(outcome_steps: list[Measurement], commits: list[str], first_bad: int,
                   keys: list[str]) -> dict[str, dict[str, Any]]:
    """The first bad commit's values against its parent's (GOOD's when the parent is GOOD)."""
    by_commit = {m.commit: m for m in outcome_steps}
    bad = by_commit[commits[first_bad]]
    parent = by_commit.get(commits[first_bad - 1]) if first_bad > 0 else None
    change = {}
    for key in keys:
        now = bad.values.get(key, {})
        before = (parent.values.get(key, {}).get("value") if parent is not None
                  else now.get("good"))
        value = now.get("value")
        relative = (value / before - 1.0 if isinstance(value, (int, float))
                    and isinstance(before, (int, float)) and before else None)
        change[key] = {"parent": before, "value": value, "change": relative,
                       "against_good": now.get("change")}
    return change


def run_bisect(*, good: str, bad: str, experiment_path: Path | None, out_dir: Path,
               budget: str | None = None, rounds: int | None = None, seed: int = 0,
               log: Callable[[str], None] = print) -> BisectOutcome:
    """Find the first commit in GOOD..BAD whose measurement is worse than GOOD's (module doc)."""
    root = project_root(Path.cwd())
    path = experiment_path or root / DEFAULT_EXPERIMENT
    if not Path(path).exists():
        raise ConfigError(f"{path}: no such experiment; pass one, e.g. harness bisect GOOD BAD "
                          f"{DEFAULT_EXPERIMENT}")
    experiment = load_experiment(Path(path))
    good_id, bad_id = resolve_commit(root, good), resolve_commit(root, bad)
    commits = commit_range(root, good_id, bad_id)
    out_dir = Path(out_dir)
    journal = BisectLog(out_dir / LOG_NAME)
    header = {"type": "start", "log_version": LOG_VERSION, "good": good_id, "bad": bad_id,
              "experiment": experiment.name, "experiment_sha256": experiment.sha256,
              "commits": commits}
    start, reference, known_steps = journal.read()
    if start is not None and {k: start.get(k) for k in header} != header:
        raise ConfigError(f"{journal.path}: this log is of another bisection (other commits or "
                          f"experiment); pass another --out or delete the log to start over.")
    if start is None:
        journal.append(header)
    known = {m.commit: m for m in known_steps}
    if known:
        log(f"resuming from {journal.path}: {len(known)} step(s) already measured")
    log(f"bisect: {len(commits)} commit(s) after {good_id[:12]} up to {bad_id[:12]}")
    budget_s = parse_duration(budget) if budget else experiment.rounds.perf_budget
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())  # an aborted build keeps its log and cleans up
        good_checkout = stack.enter_context(
            baseline_checkout(root, good_id, cache=out_dir / "work" / "cache",
                              spec=environment_spec(experiment.subject)))
        judge = Judge(root=root, experiment=experiment, good=good_checkout,
                      work_dir=out_dir / "work", budget=budget_s,
                      pairs=rounds or experiment.rounds.perf_min, seed=seed, log=log)
        if experiment.instructions.enabled:
            if reference is None:
                reference = {"type": "reference", "commit": good_id,
                             "instructions": judge.count(good_checkout, "GOOD")}
                journal.append(reference)
            judge.set_reference(reference["instructions"])
        if known:  # the evidence chosen at BAD, as the log recorded it
            first = known.get(commits[-1])
            if first is not None:
                judge.evidence = first.evidence
                judge.keys = [k for k, v in first.values.items()
                              if v.get("verdict") == "regression"]

        def judged(commit: str) -> Measurement:
            result = judge(commit)
            journal.append({"type": "step", "measurement": result.to_json()})
            return result

        try:
            first_bad, steps, why = search(commits, judged, known)
        except KeyboardInterrupt:
            log(f"bisect interrupted; the finished steps are kept in {journal.path}: run the same "
                f"command again to resume")
            raise
    keys = judge.keys
    change = _parent_change(steps, commits, first_bad, keys) if first_bad is not None else {}
    subjects = {m.commit: subject_line(root, m.commit) for m in steps}
    subject = subjects[commits[first_bad]] if first_bad is not None else None
    outcome = BisectOutcome(
        good=good_id, bad=bad_id, experiment=experiment.name, commits=tuple(commits),
        evidence=judge.evidence, keys=tuple(keys), steps=tuple(steps),
        first_bad=commits[first_bad] if first_bad is not None else None, subject=subject,
        change=change, headline=_headline(first_bad, commits, subject, change, why),
        resumed=sum(1 for m in steps if m.commit in known), subjects=subjects)
    if outcome.first_bad is None and outcome.evidence and why.startswith("BAD is not worse"):
        outcome = dataclasses.replace(outcome, evidence=None)
    write_report(outcome, out_dir)
    return outcome


def _headline(first_bad: int | None, commits: list[str], subject: str | None,
              change: dict[str, dict[str, Any]], why: str) -> str:
    if first_bad is None:
        return why[0].upper() + why[1:] + "."
    parts = [f"{key} {_pct(v['change'])} against its parent ({_pct(v['against_good'])} against "
             f"GOOD)" for key, v in change.items()]
    return (f"First bad commit: {commits[first_bad][:12]} \"{subject}\": "
            + "; ".join(parts) + ".")


# ---------------------------------------------------------------------------------------------
# The report


def markdown(outcome: BisectOutcome) -> str:
    """bisect.md: the answer first, then every step in the order it was measured."""
    lines = [f"# Bisect: {outcome.experiment}", "", f"**{outcome.headline}**", "",
             f"- GOOD {outcome.good}", f"- BAD {outcome.bad}",
             f"- {len(outcome.commits)} commit(s) in the range; {len(outcome.steps)} measured"
             + (f" ({outcome.resumed} taken from the log)" if outcome.resumed else ""),
             f"- evidence: {outcome.evidence or 'none'}"
             + (f" ({', '.join(outcome.keys)})" if outcome.keys else ""), "",
             "| # | commit | position | verdict | values against GOOD | seconds |",
             "|---|---|---|---|---|---|"]
    for number, step in enumerate(outcome.steps, 1):
        position = outcome.commits.index(step.commit) + 1
        values = "; ".join(f"{k}: {_fmt(v.get('good'))} -> {_fmt(v.get('value'))} "
                           f"({_pct(v.get('change'))})" for k, v in step.values.items())
        subject = outcome.subjects.get(step.commit, "").replace("|", "/")
        lines.append(f"| {number} | `{step.commit[:12]}` {subject} | "
                     f"{position}/{len(outcome.commits)} | "
                     f"{step.verdict} | {values or step.reason} | {step.seconds:g} |")
    lines.append("")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "n/a"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def write_report(outcome: BisectOutcome, out_dir: Path) -> None:
    atomic_write_json(Path(out_dir) / REPORT_JSON, outcome.to_json())
    atomic_write_text(Path(out_dir) / REPORT_MD, markdown(outcome))
