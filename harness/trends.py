"""Trends: change points of each history series, where a candidate sits, and their presentation.

`analyse()` reads series from the history store (harness.history) and detects their steps with
the metric's model (harness.changepoint: E-divisive for timing, the exact model for instruction
counts and counters); `show()` is `harness history show`. The renderers here and
harness.trendplot only read the SeriesAnalysis values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import changepoint, stats
from harness.compare import INSTRUCTIONS_METRIC
from harness.errors import HarnessError
from harness.history import Entry, HistoryStore, SeriesKey, points_from_results
from harness.metrics import METRICS
from harness.results import Results, load_results

# Counters whose unit is a whole thing (a byte, a query, an instruction): a level near 0 is
# compared with 1 unit, so 0 -> 0.005 B is not an infinite relative change.
UNIT_FLOOR = {"count": 1.0, "B": 1.0, "instr": 1.0}


@dataclass(frozen=True)
class SeriesAnalysis:
    """A series, its change points, and how to bisect each step."""

    key: SeriesKey
    experiment_path: str
    kind: str  # "timing" or "counter" (harness.metrics), "instructions" for the tier
    unit: str
    better: str
    gate: bool
    min_change: float
    entries: tuple[Entry, ...]
    detection: changepoint.Detection
    bisect: tuple[str | None, ...] = field(default=())  # per step: the command, when commits known
    candidate: float | None = None  # a pull request's value of this series (--candidate)

    @property
    def level(self) -> float:
        """The median of the newest level: the points since the last step."""
        steps = self.detection.steps
        start = steps[-1].index if steps else 0
        return stats.median([e.value for e in self.entries[start:]])

    @property
    def candidate_change(self) -> float | None:
        """The candidate against the newest level (candidate / level - 1)."""
        if self.candidate is None or not self.entries or self.level == 0:
            return None
        return self.candidate / self.level - 1.0

    def worse(self, step: changepoint.Step) -> bool:
        """The step moved the metric the bad way."""
        if step.change is None:
            return self.better == "lower"
        return step.change > 0 if self.better == "lower" else step.change < 0

    def matters(self, step: changepoint.Step) -> bool:
        """Worse by at least the metric's minimum change: what a nightly posts."""
        return self.worse(step) and (step.change is None or abs(step.change) >= self.min_change)


# ---------------------------------------------------------------------------------------------
# Analysis


def model_of(metric: str) -> changepoint.Model:
    """Instruction counts and counters are exact; everything else is timing."""
    if metric == INSTRUCTIONS_METRIC:
        return "exact"
    return "exact" if METRICS[metric].kind == "counter" else "timing"


def bisect_command(experiment_path: str, step: changepoint.Step,
                   entries: tuple[Entry, ...]) -> str | None:
    """`harness bisect LAST_GOOD FIRST_BAD EXPERIMENT` for a step, when both commits are known."""
    good, bad = entries[step.previous].commit, entries[step.index].commit
    if not good or not bad or good == bad:
        return None
    return f"harness bisect {good[:12]} {bad[:12]} {experiment_path}"


def analyse_series(key: SeriesKey, entries: list[Entry], *, experiment_path: str, gate: bool,
                   min_change: float, seed: int = 0) -> SeriesAnalysis:
    """Change points of one series with the metric's model."""
    metric = METRICS.get(key.metric)
    kind = "instructions" if key.metric == INSTRUCTIONS_METRIC else (metric.kind if metric
                                                                     else "timing")
    unit = metric.unit if metric else ""
    model = model_of(key.metric) if metric else "timing"
    detection = changepoint.detect([e.value for e in entries], model=model, seed=seed,
                                   floor=UNIT_FLOOR.get(unit, 0.0))
    frozen = tuple(entries)
    commands = tuple(bisect_command(experiment_path, s, frozen) for s in detection.steps)
    return SeriesAnalysis(key=key, experiment_path=experiment_path, kind=kind, unit=unit,
                          better=metric.better if metric else "lower", gate=gate,
                          min_change=min_change, entries=frozen, detection=detection,
                          bisect=commands)


def analyse(store: HistoryStore, *, experiment: str | None = None, platform: str | None = None,
            metric: str | None = None, gated_only: bool = True,
            last: int | None = None) -> list[SeriesAnalysis]:
    """Every selected series with its steps (the newest `last` points of each, when given)."""
    out = []
    for key in store.keys(experiment=experiment, platform=platform, metric=metric,
                          gated_only=gated_only):
        entries, path, gate, min_change = store.series(key)
        if last:
            entries = entries[-last:]
        out.append(analyse_series(key, entries, experiment_path=path, gate=gate,
                                  min_change=min_change))
    return out


def new_steps(analyses: list[SeriesAnalysis], *, since: str | None = None
              ) -> Iterator[tuple[SeriesAnalysis, changepoint.Step, str | None]]:
    """Steps that made a gated metric worse by its minimum change, whose first bad point was built
    after `since` (ISO time; None: all of them)."""
    for analysis in analyses:
        if not analysis.gate:
            continue
        for step, command in zip(analysis.detection.steps, analysis.bisect, strict=True):
            if analysis.matters(step) and (since is None
                                           or analysis.entries[step.index].built_at > since):
                yield analysis, step, command

# ---------------------------------------------------------------------------------------------
# Presentation


def _value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms"
    if abs(value) >= 1e5:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.4g} {unit}".strip()


def _where(entry: Entry) -> str:
    build = f"#{entry.build} " if entry.build is not None else ""
    commit = (entry.commit or "?")[:10]
    return f"{build}{commit} {entry.built_at[:10]}"


def step_line(analysis: SeriesAnalysis, step: changepoint.Step) -> str:
    """One line per step: between which runs, from what to what, how sure."""
    change = "from 0" if step.change is None else f"{step.change:+.2%}"
    flag = ("worse" if analysis.worse(step) else "better")
    if analysis.worse(step) and not analysis.matters(step):
        flag += f", below the {analysis.min_change:.3g} minimum"
    return (f"{_where(analysis.entries[step.previous])} -> {_where(analysis.entries[step.index])}"
            f"  {_value(step.before, analysis.unit)} -> {_value(step.after, analysis.unit)}"
            f"  {change} ({flag})  confidence {step.confidence:.1%}; {step.note}")


def terminal_text(analyses: list[SeriesAnalysis]) -> str:
    """The `history show` table: per series a header, its steps and the bisect commands."""
    if not analyses:
        return ("history: no series matched; run `harness history sync` first, or widen the "
                "filters (--all shows metrics that do not gate).")
    lines = []
    for a in analyses:
        det = a.detection
        gated = "gated" if a.gate else "not gated"
        span = f"{a.entries[0].built_at[:10]}..{a.entries[-1].built_at[:10]}"
        lines.append(f"{a.key.experiment} / {a.key.platform} / {a.key.name}  "
                     f"[{a.kind}, {gated}, {span}]")
        lines.append(f"  {det.note}")
        lines.append(f"  newest: {_value(a.entries[-1].value, a.unit)} at "
                     f"{_where(a.entries[-1])}")
        if a.candidate is not None:
            change = a.candidate_change
            where = "" if change is None else f", {change:+.2%} against the newest level"
            lines.append(f"  candidate: {_value(a.candidate, a.unit)}{where}")
        if det.enough and not det.steps:
            lines.append("  no step detected")
        for number, (step, command) in enumerate(zip(det.steps, a.bisect, strict=True), start=1):
            lines.append(f"  step {number}: {step_line(a, step)}")
            if command and a.worse(step):
                lines.append(f"          bisect: {command}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def analyses_to_json(analyses: list[SeriesAnalysis]) -> dict[str, Any]:
    """history.json: every series' points, steps and bisect commands."""
    return {
        "format_version": 1,  # 1: first version
        "series": [{
            "experiment": a.key.experiment, "platform": a.key.platform, "metric": a.key.metric,
            "endpoint": a.key.endpoint, "step": a.key.step, "name": a.key.name, "kind": a.kind,
            "unit": a.unit, "gate": a.gate, "min_change": a.min_change,
            "points": [{"value": e.value, "commit": e.commit, "build": e.build,
                        "built_at": e.built_at, "url": e.url} for e in a.entries],
            "detection": a.detection.to_json(),
            "bisect": list(a.bisect),
            "candidate": a.candidate, "candidate_change": a.candidate_change,
        } for a in analyses],
    }

# ---------------------------------------------------------------------------------------------
# The command

def with_candidate(analyses: list[SeriesAnalysis], candidate: Results) -> list[SeriesAnalysis]:
    """Each series of the candidate's experiment and platform with the candidate's value."""
    values = {(p.metric, p.endpoint, p.step): p.value for p in points_from_results(candidate)}
    platform = candidate.environment.get("platform")
    out = []
    for a in analyses:
        same = a.key.experiment == candidate.experiment.name and a.key.platform == platform
        value = values.get((a.key.metric, a.key.endpoint, a.key.step)) if same else None
        out.append(dataclasses.replace(a, candidate=value))
    return out


def show(*, db: Path, experiment: str | None = None, platform: str | None = None,
         metric: str | None = None, all_metrics: bool = False, last: int | None = None,
         out: Path | None = None, candidate: Path | None = None,
         ) -> tuple[list[SeriesAnalysis], list[Path]]:
    """`harness history show`: the analyses, and with `out` history.json and trend plots.

    With `candidate` (a pull request's results.json) each matching series carries its value, so
    the text and the plots show where it sits on the trend."""
    if not Path(db).exists():
        raise HarnessError(f"{db}: no history database yet; run `harness history sync "
                           f"--from-dir DIR` or `--jenkins JOB` first (or pass --db).")
    if metric is not None and metric not in METRICS:
        raise HarnessError(f"--metric {metric!r}: unknown; the metrics are listed in "
                           f"docs/metrics.md.")
    with HistoryStore(db) as store:
        analyses = analyse(store, experiment=experiment, platform=platform, metric=metric,
                           gated_only=not all_metrics and metric is None, last=last)
    if candidate is not None:
        analyses = with_candidate(analyses, load_results(Path(candidate)))
    written: list[Path] = []
    if out is not None:
        from harness.files import atomic_write_json
        from harness.trendplot import write_trend_plots

        atomic_write_json(Path(out) / "history.json", analyses_to_json(analyses))
        written.append(Path(out) / "history.json")
        written += write_trend_plots(analyses, Path(out))
    return analyses, written
