"""`harness perf`: baseline and candidate measured here in interleaved rounds, then judged.

Why interleaved: noise on shared machines is mostly temporal (neighbours' load changes within
seconds, DESIGN.md section 8), so a baseline measured at another time carries another period's
noise. Alternating fresh-start rounds of both sides in a seeded random order (each pair of rounds
in random order, so neither side always goes first) spreads that noise over both sides alike.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harness import stats
from harness.compare import ALPHA, Comparison, Design, compare, driver_lagged
from harness.errors import ConfigError
from harness.experiment import Experiment, load_experiment
from harness.instructions import InstructionTier
from harness.process import sigterm_as_interrupt
from harness.progress import estimate_left, time_left_text
from harness.pyfunctions import run_function_profile
from harness.report import write_reports
from harness.results import Results, Round, load_results, save_results
from harness.runner import build_results, rate_steps, run_round, with_instructions
from harness.sides import Side, build_candidate, candidate_as_run, enter_baseline
from harness.units import parse_duration
from harness.worktree import project_root

DEFAULT_EXPERIMENT = Path("experiments") / "api-quick.toml"
TIMING = "timing"
INSTRUCTION_RUNS = 2  # per side: the instruction counts' own spread is measured
MAX_PAIRS = 40  # the most pairs a plan looks at, however long the budget
RERUNS = 2  # rounds per session run again after the driver lagged, every request answered
T = TypeVar("T")


@dataclass(frozen=True)
class PerfOutcome:
    """What a perf session produced, for the CLI to present."""

    comparison: Comparison
    out_dir: Path
    report: Path
    duration: float
    rounds_per_side: int
    stop_reason: str


def pair_order(rng: random.Random, labels: tuple[str, str]) -> tuple[str, str]:
    """The order of one pair of rounds: each order with probability 1/2 (randomised ABBA)."""
    first, second = labels
    return (first, second) if rng.random() < 0.5 else (second, first)


class Session:
    """Runs rounds of two sides alternately and keeps what they measured."""

    def __init__(self, sides: tuple[Side, Side], *, work_dir: Path, seed: int,
                 log: Callable[[str], None]) -> None:
        self.sides = {side.label: side for side in sides}
        self.labels = (sides[0].label, sides[1].label)
        self.rng = random.Random(seed)
        self.seed = seed
        self.work_dir = work_dir
        self.log = log
        self.rounds: dict[str, list[Round]] = {label: [] for label in self.labels}
        self.order: list[str] = []
        self.pair_seconds: list[float] = []
        self.round_seconds: list[float] = []
        self.planned_pairs = 0  # set by run_session: the first pairs, then the plan's
        self.instructions: dict[str, dict | None] = {label: None for label in self.labels}
        self.reruns: list[str] = []  # one line per round left out and run again

    def count_instructions(self, *, time_left: Callable[[], float] = lambda: float("inf")) -> None:
        """The instruction tier: once per side, then a second time per side so the counts' own
        spread is measured (only the N-request runs again: the 0-request count is shared,
        harness.instructions.InstructionTier), unless that second run would take more than half
        of the time left for the rounds (under heavy load a cachegrind run takes minutes).

        Both sides run side by side: counts do not depend on timing (two runs of identical code
        differed by 0.01-0.06% when run so, docs/performance.md), and on 2 cores with a neighbour
        busy on one the two valgrind processes get more of the machine together than one alone.
        No timing round runs meanwhile."""
        runs: dict[str, list] = {label: [] for label in self.labels}
        tiers = {label: InstructionTier(side.experiment,
                                        work_dir=self.work_dir / f"instructions-{label}",
                                        project_root=side.checkout.root,
                                        python=side.checkout.python)
                 for label, side in self.sides.items() if side.experiment.instructions.enabled}
        for run in range(INSTRUCTION_RUNS if tiers else 0):
            self.log(f"instruction counts under valgrind: {' and '.join(tiers)} side by side, "
                     f"run {run + 1} of {INSTRUCTION_RUNS}")
            jobs = {label: tier.run for label, tier in tiers.items()}
            for label, result in side_by_side(jobs, on_interrupt=functools.partial(
                    _stop_all, tiers.values())).items():
                runs[label].append(result)
            again = max(tier.last_busy_seconds for tier in tiers.values())
            if run + 1 < INSTRUCTION_RUNS and again > time_left() / 2:
                self.log(f"another instruction run would take about {again:.0f} s; one run per "
                         f"side this time, to leave the budget to the rounds")
                break
        for label in self.labels:
            self.instructions[label] = merge_instruction_runs(runs[label])
        profiled = [label for label in self.labels if self.instructions[label] is not None]
        if profiled:  # which Python functions ran, once per side
            self.log(f"Python function profile: {' and '.join(profiled)} side by side")
        profiles = side_by_side({label: functools.partial(
            run_function_profile, self.sides[label].experiment,
            work_dir=self.work_dir / f"functions-{label}",
            project_root=self.sides[label].checkout.root,
            python=self.sides[label].checkout.python) for label in profiled})
        for label, profile in profiles.items():
            self.instructions[label]["python"] = profile  # type: ignore[index]

    def run_pair(self, planned: str = "") -> None:
        """One pair of rounds in random order; `planned` says how many pairs the plan allows
        (for the progress lines, with an estimate of the time left)."""
        started = time.monotonic()
        pair = len(self.pair_seconds) + 1
        for label in pair_order(self.rng, self.labels):
            for step in rate_steps(self.sides[label].experiment):
                self.rounds[label].extend(self._measured_round(label, step, pair, planned))
        self.pair_seconds.append(time.monotonic() - started)

    def _measured_round(self, label: str, step: float | None, pair: int,
                        planned: str) -> list[Round]:
        """One round of a side; run again, at most RERUNS times a session, when its load driver
        fell behind while every request was answered (`driver_lagged`): beside an idle subject
        that is the agent's load on the harness, beside a busy one it may be either, and only
        another round tells; the round's place in its pair is kept. A round that fails any other
        way (failed requests, a dead subject), or lags again once the re-runs are spent, is kept
        as it is, for the verdict to judge."""
        side = self.sides[label]
        while True:
            index = len(self.order)
            self.order.append(label)
            # a re-run takes the place of the round it replaces in the count
            self.log(self.progress_line(index + 1 - len(self.reruns), pair, planned, label,
                                        step))
            round_started = time.monotonic()
            rounds = run_round(side.experiment, index=index, side=label, step=step,
                               work_dir=self.work_dir / f"round-{index:03d}-{label}",
                               project_root=side.checkout.root, python=side.checkout.python)
            self.round_seconds.append(time.monotonic() - round_started)
            lagged = [r for r in rounds if driver_lagged(r)]
            if not lagged or len(self.reruns) >= RERUNS:
                return rounds
            note = (f"load driver: {label} round {index} was left out and run again "
                    f"({len(self.reruns) + 1} of at most {RERUNS} re-runs): its driver fell "
                    f"behind while every request was answered, which the agent's other load "
                    f"causes as well as a subject that cannot keep up: {lagged[0].invalid_reason}")
            self.reruns.append(note)
            self.log(note)

    def reruns_of(self, label: str) -> list[str]:
        """The re-run notes of one side's rounds (its results.json warnings)."""
        return [note for note in self.reruns if note.startswith(f"load driver: {label} round ")]

    def progress_line(self, number: int, pair: int, planned: str, label: str,
                      step: float | None) -> str:
        """'round 5 of 16: baseline (pair 3 of 8, first look after 8); about 2 min 10 s left'."""
        per_pair = sum(len(rate_steps(side.experiment)) for side in self.sides.values())
        total = max(self.planned_pairs, pair) * per_pair
        left = estimate_left(number - 1, total, self.round_seconds)
        where = f"pair {pair} of {max(self.planned_pairs, pair)}" + (f", {planned}" if planned
                                                                     else "")
        return (f"round {number} of {total}: {label}" + (f" at {step:g}/s" if step else "")
                + f" ({where}); {time_left_text(left)}")

    def results(self, label: str, extra: dict) -> Results:
        side = self.sides[label]
        results = build_results(side.experiment, self.rounds[label], label=label,
                                project_root=side.checkout.root, python=side.checkout.python)
        session = {**results.session, "mode": "interleaved", "seed": self.seed,
                   "order": list(self.order),
                   "max_error_rate": _max_error_rate(side.experiment), **extra,
                   "code": side.checkout.describe(), "reruns": list(self.reruns)}
        return dataclasses.replace(results, session=session,
                                   warnings=results.warnings + tuple(self.reruns_of(label)),
                                   instructions=self.instructions[label])


def side_by_side(jobs: dict[str, Callable[[], T]], *,
                 on_interrupt: Callable[[], None] = lambda: None) -> dict[str, T]:
    """Every job at once, one thread each (each runs and waits for its own subject process);
    results by key. On the first failure, or an interrupt (SIGTERM, Ctrl-C), `on_interrupt` asks
    the other jobs to stop, each stops its current subject itself, and then the failure or the
    interrupt goes on, so no subject outlives the session."""
    if len(jobs) <= 1:
        return {key: job() for key, job in jobs.items()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        try:
            concurrent.futures.wait(futures.values(),
                                    return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in futures.values():  # the first failure, without waiting for the rest
                if future.done() and future.exception() is not None:
                    future.result()
            return {key: future.result() for key, future in futures.items()}
        except BaseException:
            on_interrupt()
            raise


def _stop_all(tiers: Iterable[InstructionTier]) -> None:
    for tier in tiers:
        tier.stop.set()


def merge_instruction_runs(runs: Sequence[dict | None]) -> dict | None:
    """One side's instruction data (the first run's) with every run's per-request count listed
    per endpoint under `per_request_runs` (compare judges those; `per_request` stays a number)."""
    usable = [r for r in runs if r]
    if not usable:
        return None
    merged = dict(usable[0])
    endpoints: dict[str, dict] = {}
    for run in usable:
        for name, entry in (run.get("endpoints") or {}).items():
            value = entry.get("per_request") if isinstance(entry, dict) else None
            if not isinstance(value, (int, float)):
                continue
            target = endpoints.setdefault(name, {**entry, "per_request_runs": []})
            target["per_request_runs"].append(float(value))
    merged["endpoints"] = endpoints
    merged["runs"] = len(usable)
    return merged


def _max_error_rate(experiment: Experiment) -> float | None:
    return experiment.workload.max_error_rate if experiment.workload else None


@dataclass(frozen=True)
class Plan:
    """The sequential plan of a session: a first look after `first` pairs, then one look after
    every further pair up to `planned`, alpha spent across them (stats.sequential_levels)."""

    first: int
    planned: int
    alpha: float = ALPHA

    def design(self, pairs: int) -> Design:
        looks = tuple(range(self.first, self.planned + 1))
        levels = stats.sequential_levels(looks, self.alpha)
        position = min(max(pairs, self.first), self.planned) - self.first
        return Design(level=levels[position], look=position + 1, planned=len(looks))


def plan_pairs(first: int, *, pair_seconds: float, remaining: float,
               most: int = MAX_PAIRS) -> Plan:
    """Looks that fit the budget: after the first pairs, as many more as the time left allows at
    the pace measured so far (fixed before the first look, so the data cannot move it)."""
    extra = int(remaining // pair_seconds) if pair_seconds > 0 else 0
    return Plan(first=first, planned=max(first, min(most, first + max(0, extra))))


def settled(comparison: Comparison) -> bool:
    """Stop adding pairs: the verdict is decided and no gated timing metric is still open."""
    if comparison.overall in ("regression", "invalid", "refused"):
        return True
    open_timing = any(m.gate and m.kind == TIMING and m.verdict == "inconclusive"
                      for m in comparison.metrics)
    return comparison.overall != "inconclusive" and not open_timing


def decided_exactly(comparison: Comparison) -> bool:
    """The exact evidence alone already fails the build: a gated counter or instruction count is
    a regression with its margin, or the candidate could not sustain the rate by the exact tests
    on its failed requests and rounds. More timing pairs cannot change that verdict, so a session
    stops here even before its first planned look (timing is then not tested: see
    `early_design`)."""
    if comparison.overall != "regression":
        return False
    if any(m.gate and m.kind != TIMING and m.verdict == "regression" for m in comparison.metrics):
        return True
    overload = comparison.details.get("statistics", {}).get("overload") or {}
    return bool(overload.get("regression"))


def early_design(first: int, alpha: float = ALPHA) -> Design:
    """How timing is judged at a check before the first planned look, which is only there to
    stop on exact evidence (`decided_exactly`): at the first look's level of the longest plan,
    the smallest any plan spends there, so that timing cannot decide on fewer pairs than the
    plan's first look and such checks spend none of the plan's alpha. (Whether the session stops
    at such a check depends on the exact gates only, never on the timing data.)"""
    level = Plan(first=first, planned=max(first, MAX_PAIRS), alpha=alpha).design(first).level
    return Design(level=level)


def run_session(
    sides: tuple[Side, Side], *, pairs: int, budget: float, seed: int, work_dir: Path,
    started: float, log: Callable[[str], None],
) -> tuple[Results, Results, Comparison, str]:
    """`pairs` interleaved pairs, then one look per further pair up to the plan that the budget
    (the whole session's wall time, counted from `started`) allows; alpha spent across looks.
    After each of the first pairs the session stops if the exact evidence already decided a
    regression (`decided_exactly`), or the comparison is already invalid or refused (a round the
    harness could not measure, after its re-runs; environments that differ): both are final."""
    session = Session(sides, work_dir=work_dir, seed=seed, log=log)
    session.count_instructions(time_left=lambda: budget - (time.monotonic() - started))
    session.planned_pairs = pairs

    def judged(design: Design, plan: Plan | None) -> tuple[Results, Results, Comparison, dict]:
        elapsed = time.monotonic() - started
        done = len(session.pair_seconds)
        extra = {"budget": budget, "pairs": done, "elapsed": round(elapsed, 1),
                 "planned_pairs": plan.planned if plan else pairs, "look": design.look,
                 "planned_looks": design.planned, "look_level": design.level}
        baseline = session.results(session.labels[0], extra)
        candidate = session.results(session.labels[1], extra)
        return baseline, candidate, compare(baseline, candidate, design=design), extra

    for done in range(1, pairs + 1):
        session.run_pair(planned=f"first look after {pairs}")
        if done < pairs:
            baseline, candidate, comparison, _ = judged(early_design(pairs), None)
            if decided_exactly(comparison):
                return baseline, candidate, comparison, (
                    f"the exact evidence decided a regression after {done} pair(s), before "
                    f"the first look at {pairs}: more timing pairs cannot change the verdict")
            if comparison.overall in ("invalid", "refused"):
                return baseline, candidate, comparison, (
                    f"{comparison.overall} after {done} pair(s), before the first look at "
                    f"{pairs}: more pairs cannot mend what made it so")
    pace = max(session.pair_seconds)
    plan = plan_pairs(pairs, pair_seconds=pace, remaining=budget - (time.monotonic() - started))
    session.planned_pairs = plan.planned
    while True:
        done = len(session.pair_seconds)
        design = plan.design(done)
        baseline, candidate, comparison, extra = judged(design, plan)
        if settled(comparison):
            return baseline, candidate, comparison, (
                f"settled at look {design.look} of {design.planned} ({done} pairs)")
        if done >= plan.planned:
            over = (f", over the {budget:.0f} s budget: the first {pairs} pairs always run"
                    if extra["elapsed"] > budget else f" in the {budget:.0f} s budget")
            return baseline, candidate, comparison, (
                f"all {design.planned} planned look(s) done ({done} pairs){over}")
        left = (plan.planned - done) * pace
        log(f"look {design.look} of {design.planned} ({done} pairs): {comparison.overall}; "
            f"adding a pair, about {left:.0f} s left at most")
        session.run_pair(planned=f"look {(design.look or 0) + 1} of {design.planned} after it")
        pace = max(pace, session.pair_seconds[-1])


def _flagged_timing(comparison: Comparison) -> list[str]:
    """Gated timing metrics that looked worse against the artifact (estimate beyond 0)."""
    return [m.key for m in comparison.metrics
            if m.kind == TIMING and m.gate and m.change is not None
            and (m.change > 0) == (m.better == "lower") and m.change != 0]


def _needs_confirmation(comparison: Comparison) -> bool:
    """Gated timing was measured against an artifact and the exact gates did not already fail
    the build (counters and instructions may decide alone)."""
    if comparison.overall in ("invalid", "refused"):
        return False
    exact_failed = any(m.gate and m.kind != TIMING and m.verdict == "regression"
                       for m in comparison.metrics)
    return not exact_failed and any(m.gate and m.kind == TIMING for m in comparison.metrics)


def _candidate_only(side: Side, *, rounds: int, work_dir: Path, log: Callable[[str], None]):
    collected: list[Round] = []
    for index in range(rounds):
        for step in rate_steps(side.experiment):
            log(f"round {index + 1}/{rounds}: {side.label}" + (f" at {step:g}/s" if step else ""))
            collected.extend(run_round(
                side.experiment, index=len(collected), side=side.label, step=step,
                work_dir=work_dir / f"round-{len(collected):03d}-{side.label}",
                project_root=side.checkout.root, python=side.checkout.python,
            ))
    results = build_results(side.experiment, collected, label=side.label,
                            project_root=side.checkout.root, python=side.checkout.python)
    results = with_instructions(results, side.experiment, work_dir=work_dir / "instructions",
                                project_root=side.checkout.root, python=side.checkout.python)
    return dataclasses.replace(results, session={
        **results.session, "mode": "candidate-only", "rounds": rounds,
        "max_error_rate": _max_error_rate(side.experiment),
        "code": side.checkout.describe()})


def run_perf(
    *,
    experiment_path: Path | None,
    out_dir: Path,
    baseline_ref: str | None = None,
    baseline_dir: Path | None = None,
    baseline_file: Path | None = None,
    baseline_jenkins: str | None = None,
    overrides: dict[str, str] | None = None,
    baseline_overrides: dict[str, str] | None = None,
    budget: str | None = None,
    rounds: int | None = None,
    seed: int | None = None,
    report_url: str | None = None,
    log: Callable[[str], None] | None = None,
) -> PerfOutcome:
    """Measure baseline and candidate on this machine and write results, verdict and reports.

    The baseline comes from a git ref (default: the merge base with main, checked out into a
    temporary worktree with its own environment), a results file, or a Jenkins job's newest good
    nightly artifact. Against a file or artifact, a timing regression is confirmed by re-running
    the artifact's commit interleaved with the candidate before it can fail the build.
    """
    started = time.monotonic()
    log = log or _print_now
    root = project_root(Path.cwd())
    path = experiment_path or root / DEFAULT_EXPERIMENT
    if not path.exists():
        raise ConfigError(
            f"{path}: no such experiment. Pass one, e.g. harness perf {DEFAULT_EXPERIMENT}"
        )
    overrides = overrides or {}
    candidate_exp = load_experiment(path, overrides=overrides)
    baseline_exp = load_experiment(path, overrides={**overrides, **(baseline_overrides or {})})
    budget_s = parse_duration(budget) if budget else candidate_exp.rounds.perf_budget
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    pairs = rounds or candidate_exp.rounds.perf_min
    # absolute: each side runs in its own tree, so a relative {state_dir} would point elsewhere
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = out_dir / "work"
    _check_baseline_source(baseline_file, baseline_jenkins, candidate_exp)
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())  # an aborted Jenkins build cleans up too
        if baseline_jenkins:
            baseline_file = _fetch_from_jenkins(baseline_jenkins, out_dir, candidate_exp)
            if baseline_file is None:
                log(f"no usable nightly baseline from {baseline_jenkins}; measuring the merge "
                    f"base with main on this machine instead")
        if baseline_file:
            artifact = load_results(baseline_file)
            # measured as the artifact was (harness run: the harness' own interpreter)
            here = candidate_as_run(root, candidate_exp, log=log, out_dir=out_dir)
            candidate = _candidate_only(here, rounds=pairs, work_dir=work_dir, log=log)
            comparison = compare(artifact, candidate, design=Design(confirmed=False))
            baseline, stop = artifact, f"compared with {baseline_file}"
            commit = artifact.environment.get("subject_commit")
            if _needs_confirmation(comparison) and commit:
                log(f"timing against the artifact from another time needs this agent: "
                    f"re-running commit {commit[:12]} interleaved with the candidate")
                sides = (enter_baseline(stack, root, baseline_exp, ref=commit, log=log),
                         build_candidate(root, candidate_exp, log=log, out_dir=out_dir))
                baseline, candidate, confirmed, stop = run_session(
                    sides, pairs=pairs, budget=budget_s, seed=seed, work_dir=work_dir / "confirm",
                    started=started, log=log)
                comparison = _confirmed(comparison, confirmed, _flagged_timing(comparison))
            elif _needs_confirmation(comparison):
                comparison = dataclasses.replace(comparison, warnings=comparison.warnings + (
                    "gated timing against the artifact could not be confirmed on this agent: "
                    "the artifact records no commit, so timing neither fails nor passes",))
        else:
            sides = (enter_baseline(stack, root, baseline_exp, ref=baseline_ref,
                                    directory=baseline_dir, same_tree=bool(baseline_overrides),
                                    log=log),
                     build_candidate(root, candidate_exp, log=log, out_dir=out_dir))
            baseline, candidate, comparison, stop = run_session(
                sides, pairs=pairs, budget=budget_s, seed=seed, work_dir=work_dir,
                started=started, log=log)

    save_results(baseline, out_dir / "baseline" / "results.json")
    save_results(candidate, out_dir / "candidate" / "results.json")
    write_reports(comparison, out_dir=out_dir, report_url=report_url)
    return PerfOutcome(comparison=comparison, out_dir=out_dir, report=out_dir / "report.html",
                       duration=time.monotonic() - started,
                       rounds_per_side=_rounds_per_side(candidate, candidate_exp),
                       stop_reason=stop)


def _check_baseline_source(file: Path | None, job: str | None, experiment: Experiment) -> None:
    """Refuse, before any round runs, a baseline file or job that cannot be used, naming what is
    missing (a baseline from git or a directory is checked where its side is built: sides.py)."""
    from harness import secrets

    if file is not None:
        artifact = load_results(file)
        if artifact.experiment.name != experiment.name:
            raise ConfigError(
                f"--baseline {file} holds results of experiment {artifact.experiment.name!r}, "
                f"but this session runs {experiment.name!r}; give a results.json of "
                f"{experiment.name!r} (harness run {experiment.path} --out DIR makes one)")
    elif job is not None and not secrets.optional(secrets.JENKINS_URL):
        raise ConfigError(
            f"--baseline-jenkins {job}: the environment variable {secrets.JENKINS_URL} is not "
            "set; set it to the Jenkins address (Jenkins sets it in every build), or give "
            "--baseline FILE or --baseline-ref REF instead")


def _rounds_per_side(results: Results, experiment: Experiment) -> int:
    """Subject starts of one side at one rate step (a sweep's steps are not extra rounds)."""
    first = rate_steps(experiment)[0]
    return sum(1 for r in results.rounds if r.instance == 1 and r.step == first)


def _print_now(line: str) -> None:
    """Progress lines, flushed at once: Jenkins shows a build's log while it runs."""
    print(line, flush=True)


def _confirmed(artifact: Comparison, confirmed: Comparison, flagged: list[str]) -> Comparison:
    """The same-agent comparison decides; the report says what the artifact comparison claimed."""
    kept = [m.key for m in confirmed.metrics if m.key in flagged and m.verdict == "regression"]
    seen = f"looked worse in {', '.join(flagged)}" if flagged else "showed no timing change"
    note = (
        f"Against the nightly artifact (another time, maybe another machine speed) timing "
        f"{seen}; the artifact's commit was re-run interleaved with the candidate on this agent "
        "and that session decides"
        + (f": it confirmed {', '.join(kept)}." if kept else ".")
    )
    metrics = tuple(dataclasses.replace(m, evidence=f"{m.evidence}; confirmed on this agent")
                    for m in confirmed.metrics)
    return dataclasses.replace(confirmed, metrics=metrics, reasons=confirmed.reasons + (note,),
                               details={**confirmed.details, "artifact_overall": artifact.overall})


def _fetch_from_jenkins(job: str, out_dir: Path, experiment: Experiment) -> Path | None:
    """The nightly artifact's results.json, or None when Jenkins has no usable one."""
    from harness.baseline import fetch_baseline  # only needed with --baseline-jenkins

    target = out_dir / "nightly"
    fetch_baseline(job=job, out_dir=target, experiment=experiment.name, platform=None,
                   jenkins_url=None, max_age_days=7.0, candidate_commit=None, strict=False)
    path = target / "results.json"
    return path if path.exists() else None

