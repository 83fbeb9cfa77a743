"""Verdicts: compare a candidate's results with a baseline's, metric by metric, then overall.

compare() returns a Comparison; every renderer (harness.report) only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from harness.results import Results

MetricVerdict = Literal["regression", "improvement", "unchanged", "inconclusive"]
Overall = Literal["pass", "regression", "inconclusive", "refused", "invalid"]


@dataclass(frozen=True)
class MetricComparison:
    """One metric (at one rate step, or for one endpoint) compared between the two sides.

    `key` is unique in a Comparison: the metric name, plus "@<rate>/s" for a sweep step and
    "[endpoint]" for per-endpoint metrics. Relative values are fractions (0.05 = +5%).
    `baseline`/`candidate` are the medians of the round values (timing) or the values (counters).
    """

    key: str
    metric: str  # name in harness.metrics.METRICS
    label: str
    unit: str
    kind: str  # "timing" or "counter"
    better: str  # "lower" or "higher"
    step: float | None
    gate: bool
    min_change: float
    baseline: float | None
    candidate: float | None
    change: float | None  # candidate / baseline - 1
    ci_low: float | None  # confidence interval of the relative change
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None  # after the multiple-comparison correction
    detectable: float | None  # smallest relative change this comparison could have detected
    rounds_needed: int | None  # rounds per side that would settle an inconclusive verdict
    noise: float | None  # coefficient of variation of the baseline's own rounds
    verdict: MetricVerdict
    evidence: str  # which evidence the verdict rests on, e.g. "counter, 1 round per side"
    reason: str  # one sentence for people
    baseline_rounds: tuple[float, ...] = ()
    candidate_rounds: tuple[float, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """The whole comparison: per-metric results, the overall verdict and why."""

    baseline: Results
    candidate: Results
    metrics: tuple[MetricComparison, ...]
    overall: Overall
    headline: str  # one sentence: what happened and why the build passed or failed
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)  # probe breakdowns, instruction diffs

    @property
    def gated(self) -> tuple[MetricComparison, ...]:
        return tuple(m for m in self.metrics if m.gate)
