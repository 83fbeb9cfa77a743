"""Verdicts: compare a candidate's results with a baseline's, metric by metric, then overall.

compare() returns a Comparison; every renderer (harness.report) only reads it. The evidence and
thresholds behind each verdict are explained for users in docs/statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness import probes, stats
from harness.environment import fingerprint_mismatches
from harness.errors import ConfigError, ExitCode
from harness.files import atomic_write_json
from harness.instructions import function_changes
from harness.metrics import METRICS, Metric
from harness.pyfunctions import python_function_changes
from harness.results import Results, Round

# verdict.json format_version history:
#   1 (harness 0.1.0): first version.
VERDICT_FORMAT_VERSION = 1

MIN_TIMING_ROUNDS = 5  # below this the exact rank test can never reach p < 0.01 (DESIGN.md 8)
MAX_ERROR_RATE = 0.01  # default when the results do not record the experiment's limit
BOOTSTRAP_RESAMPLES = 2000

# Metrics measured on every instance's process tree (harness.metrics.resource_metrics); only these
# are compared for instances other than the one receiving the load.
RESOURCE_METRICS = frozenset({
    "cpu_seconds", "cpu_per_request", "rss_max",
    "write_chars_per_request", "read_chars_per_request", "write_bytes_per_request",
    "read_bytes_per_request", "write_bytes_per_hour", "read_bytes_per_hour",
    "write_chars_per_hour",
})
INSTRUCTIONS_METRIC = "instructions_per_request"

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
    control: float | None = None  # A/A control: baseline's odd vs even rounds, relative change


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


# ---------------------------------------------------------------------------------------------
# Policies: METRICS defaults, then the candidate's experiment, then the caller's overrides.


@dataclass(frozen=True)
class Policy:
    """How one metric is judged: does it gate the build, and the smallest change that matters."""

    gate: bool
    min_change: float


def _override(policy: Policy, layer: Any) -> Policy:
    """Apply one override (a dict or an experiment MetricPolicy); None fields keep the old value."""
    get = layer.get if isinstance(layer, Mapping) else lambda name: getattr(layer, name, None)
    gate, min_change = get("gate"), get("min_change")
    return Policy(
        gate=policy.gate if gate is None else bool(gate),
        min_change=policy.min_change if min_change is None else float(min_change),
    )


def resolve_policies(
    candidate: Results, policies: Mapping[str, Any] | None = None
) -> dict[str, Policy]:
    """Every metric's policy: METRICS default < candidate.experiment.policies < `policies`.

    Keys are metric names, plus "metric@endpoint" for an endpoint's own override (present only
    when some layer names it); series_policies() turns these into one policy per series.
    """
    layers = (("the experiment's [metrics] table", candidate.experiment.policies),
              ("the policies argument", policies or {}))
    resolved = {name: Policy(m.gate, m.min_change) for name, m in METRICS.items()}
    for where, layer in layers:
        for name in layer:
            metric, at, endpoint = name.partition("@")
            if metric not in METRICS or (at and not endpoint):
                raise ConfigError(
                    f"{where}: unknown metric {name!r}. Known metrics are listed in "
                    f"harness/metrics.py (docs/metrics.md); fix the name or remove the entry."
                )
    for _, layer in layers:  # metric names first: an endpoint starts from its metric's policy
        for name, override in layer.items():
            if "@" not in name:
                resolved[name] = _override(resolved[name], override)
    for _, layer in layers:
        for name, override in layer.items():
            if "@" in name:
                start = resolved.get(name, resolved[name.partition("@")[0]])
                resolved[name] = _override(start, override)
    return resolved


# Timing metrics judged per endpoint by default when a workload mixes endpoints: each endpoint's
# value takes the metric's gate and the mix's value is reported without gating, so one endpoint's
# regression is not averaged away by another's improvement (docs/metrics.md).
PER_ENDPOINT_TIMING = frozenset({"latency_mean", "latency_p50", "latency_p95", "latency_p99"})


def series_policies(series: list[Series], resolved: Mapping[str, Policy]) -> dict[str, Policy]:
    """The policy of every series by its key, with the per-endpoint defaults applied.

    An endpoint's series takes "metric@endpoint" when given, else the metric's policy for the
    PER_ENDPOINT_TIMING metrics and the metric's min_change without gating for the rest (errors
    and queries are gated on the mix; an endpoint's CPU is an estimate). The mix's series of a
    PER_ENDPOINT_TIMING metric is not gated when per-endpoint series of it exist.
    """
    split = {(s.metric, s.step, s.instance) for s in series if s.endpoint is not None
             and s.evidence == "timing"}
    out: dict[str, Policy] = {}
    for s in series:
        policy = resolved[s.metric]
        if s.endpoint is not None and s.evidence != "instructions":
            explicit = resolved.get(f"{s.metric}@{s.endpoint}")
            if explicit is not None:
                policy = explicit
            elif s.metric not in PER_ENDPOINT_TIMING:
                policy = Policy(gate=False, min_change=policy.min_change)
        elif (s.endpoint is None and s.metric in PER_ENDPOINT_TIMING
              and (s.metric, s.step, s.instance) in split):
            policy = Policy(gate=False, min_change=policy.min_change)
        out[s.key] = policy
    return out


# ---------------------------------------------------------------------------------------------
# Round values: one value per valid round, per metric, step and instance.


@dataclass(frozen=True)
class Series:
    """The values one metric took on each side, one per round (or per instruction run)."""

    key: str
    metric: str
    step: float | None
    instance: int
    endpoint: str | None
    baseline: tuple[float, ...]
    candidate: tuple[float, ...]
    evidence: str  # "counter", "instructions" or "timing"


def _key(metric: str, step: float | None, sweep: bool, instance: int, endpoint: str | None) -> str:
    key = metric
    if endpoint is not None:
        key += f"[{endpoint}]"
    if sweep and step is not None:
        key += f"@{step:g}/s"
    if instance != 1:
        key += f"#{instance}"
    return key


ValueKey = tuple[str, float | None, int, str | None]  # metric, step, instance, endpoint


def _round_values(results: Results) -> dict[ValueKey, list[float]]:
    """Values per (metric, step, instance, endpoint) from valid rounds, in execution order.

    Endpoint None is the whole mix (Round.summary); named endpoints come from Round.endpoints.
    """
    several_instances = any(r.instance != 1 for r in results.rounds)
    values: dict[ValueKey, list[float]] = {}
    for rnd in sorted(results.rounds, key=lambda r: r.index):
        if not rnd.valid:
            continue
        if rnd.instance != 1 and not several_instances:
            continue
        summaries: list[tuple[str | None, dict[str, float | None]]] = [(None, rnd.summary)]
        summaries += sorted(rnd.endpoints.items())
        for endpoint, summary in summaries:
            for metric, value in summary.items():
                if metric not in METRICS or value is None or not math.isfinite(value):
                    continue
                if rnd.instance != 1 and metric not in RESOURCE_METRICS:
                    continue
                values.setdefault((metric, rnd.step, rnd.instance, endpoint), []).append(
                    float(value))
    return values


def _instruction_values(results: Results) -> dict[str, tuple[float, ...]]:
    """Instructions per request per endpoint from the instruction tier's data, when present.

    Accepts {"endpoints": {name: {"per_request": value or [values]}}} (harness.instructions).
    """
    endpoints = (results.instructions or {}).get("endpoints") or {}
    out: dict[str, tuple[float, ...]] = {}
    for name, entry in endpoints.items():
        value = entry.get("per_request") if isinstance(entry, Mapping) else None
        values = value if isinstance(value, (list, tuple)) else [value]
        numbers = tuple(float(v) for v in values if isinstance(v, (int, float)))
        if numbers:
            out[str(name)] = numbers
    return out


def collect_series(baseline: Results, candidate: Results) -> tuple[list[Series], list[str]]:
    """Pair the two sides' round values by metric, step and instance; warn about one-sided ones."""
    base, cand = _round_values(baseline), _round_values(candidate)
    steps = {step for (_, step, _, _) in (*base, *cand)}
    sweep = len(steps) > 1
    series: list[Series] = []
    warnings: list[str] = []
    one_sided: set[str] = set()
    for item in sorted(set(base) | set(cand), key=_order):
        metric, step, instance, endpoint = item
        key = _key(metric, step, sweep, instance, endpoint)
        if item not in base or item not in cand:
            side = "candidate" if item in cand else "baseline"
            if endpoint is None:
                warnings.append(f"{key}: measured only in the {side}; not compared.")
            elif side not in one_sided:  # e.g. a baseline written before per-endpoint results
                one_sided.add(side)
                warnings.append(f"per-endpoint results exist only in the {side} (the other "
                                f"side's results.json has none); endpoints are compared only "
                                f"where both sides have them.")
            continue
        series.append(Series(key, metric, step, instance, endpoint, tuple(base[item]),
                             tuple(cand[item]), METRICS[metric].kind))
    base_instr, cand_instr = _instruction_values(baseline), _instruction_values(candidate)
    for endpoint in sorted(set(base_instr) | set(cand_instr)):
        key = _key(INSTRUCTIONS_METRIC, None, False, 1, endpoint)
        if endpoint not in base_instr or endpoint not in cand_instr:
            side = "candidate" if endpoint in cand_instr else "baseline"
            warnings.append(f"{key}: measured only in the {side}; not compared.")
            continue
        series.append(Series(key, INSTRUCTIONS_METRIC, None, 1, endpoint, base_instr[endpoint],
                             cand_instr[endpoint], "instructions"))
    return series, warnings


_METRIC_ORDER = {name: i for i, name in enumerate(METRICS)}


def _order(item: ValueKey) -> tuple[int, float, int, str]:
    """Declaration order of METRICS (counters first: the most reliable evidence), step, instance,
    the mix before its endpoints."""
    metric, step, instance, endpoint = item
    return (_METRIC_ORDER[metric], -1.0 if step is None else step, instance,
            "" if endpoint is None else "\0" + endpoint)


# ---------------------------------------------------------------------------------------------
# Counters and instruction counts: nearly deterministic, judged by a relative threshold.


def _spread(values: tuple[float, ...]) -> float:
    """(max - min) / |median| of one side's rounds; 0 for a single value."""
    if len(values) < 2:
        return 0.0
    mid = stats.median(values)
    width = max(values) - min(values)
    if mid == 0:
        return 0.0 if width == 0 else math.inf
    return width / abs(mid)


def _worse(change: float, metric: Metric) -> float:
    """The change signed so that positive means worse for this metric."""
    return change if metric.better == "lower" else -change


def _fmt(change: float | None) -> str:
    return "n/a" if change is None else f"{change:+.1%}"


def _pct(fraction: float) -> str:
    """A threshold as people write it: 0.1 -> "10%", 0.005 -> "0.5%"."""
    return f"{fraction * 100:.3g}%"


def judge_counter(series: Series, policy: Policy) -> MetricComparison:
    """Counter test: regression when the median moved the bad way by more than min_change.

    One round per side suffices (counters varied 0-0.1% between runs, DESIGN.md 8). With several
    rounds the medians are compared and each side's own spread ((max - min) / median) must stay
    below min_change, else the counter is not deterministic enough and the verdict is inconclusive.
    With min_change 0 (errors) any increase is a regression, including any increase from 0.
    """
    metric = METRICS[series.metric]
    threshold = policy.min_change
    base, cand = stats.median(series.baseline), stats.median(series.candidate)
    change = stats.relative_change(base, cand)
    n1, n2 = len(series.baseline), len(series.candidate)
    spread = max(_spread(series.baseline), _spread(series.candidate))
    verdict: MetricVerdict
    measured_spread = spread if max(n1, n2) > 1 else None
    kind = "instructions under valgrind" if series.evidence == "instructions" else "counter"
    unit = "run" if series.evidence == "instructions" else "round"
    evidence = f"{kind}, {n1} + {n2} {unit}s, relative threshold {_pct(threshold)}"
    if change is None:  # from exactly 0 to something: no ratio, but the direction is clear
        verdict = "regression" if metric.better == "lower" else "improvement"
        reason = f"went from 0 to {cand:g}; any change from 0 counts"
    elif threshold > 0 and measured_spread is not None and spread >= threshold:
        verdict = "inconclusive"
        reason = (f"its rounds varied by {spread:.1%}, not below the {_pct(threshold)} threshold; "
                  f"raise min_change or judge it as timing")
    elif _worse(change, metric) > threshold:
        verdict = "regression"
        reason = f"{_fmt(change)} is worse by more than the {_pct(threshold)} threshold"
    elif -_worse(change, metric) > threshold:
        verdict = "improvement"
        reason = f"{_fmt(change)} is better by more than the {_pct(threshold)} threshold"
    else:
        verdict = "unchanged"
        reason = f"{_fmt(change)} is within the {_pct(threshold)} threshold"
    return MetricComparison(
        key=series.key, metric=series.metric, label=_label(series, metric), unit=metric.unit,
        kind=metric.kind, better=metric.better, step=series.step, gate=policy.gate,
        min_change=threshold, baseline=base, candidate=cand, change=change, ci_low=None,
        ci_high=None, p_value=None, p_adjusted=None, detectable=measured_spread,
        rounds_needed=None, noise=measured_spread, verdict=verdict, evidence=evidence,
        reason=reason, baseline_rounds=series.baseline, candidate_rounds=series.candidate,
    )


def _label(series: Series, metric: Metric) -> str:
    suffix = f" [{series.endpoint}]" if series.endpoint else ""
    if series.instance != 1:
        suffix += f" (instance {series.instance})"
    return metric.label + suffix


# ---------------------------------------------------------------------------------------------
# Timing: noisy, judged by a rank test on round values, a bootstrap interval and a noise control.


@dataclass(frozen=True)
class TimingEvidence:
    """Everything measured about one timing metric before the multiple-comparison correction."""

    series: Series
    policy: Policy
    baseline: float
    candidate: float
    change: float | None
    ci: tuple[float, float] | None
    test: stats.RankTest
    cv: float  # the larger of the two sides' round-to-round coefficients of variation
    noise: float  # the baseline's own coefficient of variation
    control: float | None  # baseline's odd vs even rounds


def timing_evidence(series: Series, policy: Policy, *, alpha: float, seed: int) -> TimingEvidence:
    """Two-sided Mann-Whitney on round values, bootstrap CI (level 1 - alpha), noise and control."""
    b, c = series.baseline, series.candidate
    base, cand = stats.median(b), stats.median(c)
    ci = stats.bootstrap_ratio_ci(b, c, level=1.0 - alpha, resamples=BOOTSTRAP_RESAMPLES,
                                  seed=seed)
    noise = stats.coefficient_of_variation(b)
    return TimingEvidence(
        series=series, policy=policy, baseline=base, candidate=cand,
        change=stats.relative_change(base, cand), ci=ci, test=stats.mann_whitney(b, c),
        cv=max(noise, stats.coefficient_of_variation(c)), noise=noise,
        control=stats.split_half_change(b),
    )


def _timing_verdict(
    ev: TimingEvidence, p_adjusted: float, alpha: float, family: int, detectable: float,
    needed: int | None,
) -> tuple[MetricVerdict, str]:
    """Regression/improvement: adjusted p < alpha, |change| >= min_change, CI excludes 0 and the
    change exceeds the A/A control. Unchanged: a min_change shift was detectable, the CI lies
    within +-min_change and the control stayed below it. Anything else: inconclusive."""
    metric, threshold = METRICS[ev.series.metric], ev.policy.min_change
    n1, n2 = len(ev.series.baseline), len(ev.series.candidate)
    settle = f"; about {needed} rounds per side would settle it" if needed else ""
    floor = stats.min_p_value(n1, n2)
    if min(n1, n2) < MIN_TIMING_ROUNDS:
        return "inconclusive", (
            f"only {n1} + {n2} rounds: a rank test on so few rounds cannot go below "
            f"p = {floor:.2g}, so no change can be shown at alpha {alpha:g}; at least "
            f"{MIN_TIMING_ROUNDS} rounds per side are needed{settle}")
    if floor * family >= alpha:
        return "inconclusive", (
            f"with {n1} + {n2} rounds the rank test cannot go below p = {floor:.2g}, and Holm's "
            f"correction over {family} timing metrics needs p < {alpha / family:.2g}; more "
            f"rounds are needed{settle}")
    if ev.change is None or ev.ci is None:
        return "inconclusive", "the baseline's median is 0, so a relative change is undefined"
    low, high = ev.ci
    interval = f"{_fmt(ev.change)} (CI {_fmt(low)} to {_fmt(high)}, adjusted p = {p_adjusted:.2g})"
    control = abs(ev.control) if ev.control is not None else 0.0
    significant = p_adjusted < alpha and (low > 0 or high < 0)
    if significant and abs(ev.change) >= threshold and abs(ev.change) > control:
        verdict: MetricVerdict = "regression" if _worse(ev.change, metric) > 0 else "improvement"
        return verdict, f"{interval}, beyond the {_pct(threshold)} minimum"
    if significant and abs(ev.change) >= threshold:
        return "inconclusive", (
            f"{interval}, but the baseline's own odd and even rounds differed by "
            f"{_fmt(ev.control)}, as much as this change{settle}")
    if control >= threshold > 0:
        return "inconclusive", (
            f"{interval}; the baseline's own odd and even rounds differed by {_fmt(ev.control)}, "
            f"at least the {_pct(threshold)} minimum, so this session is too noisy{settle}")
    if detectable <= threshold and -threshold <= low and high <= threshold:
        return "unchanged", (
            f"{interval}, within +-{_pct(threshold)}; a {detectable:.1%} change would have been "
            f"detected")
    if detectable > threshold:
        return "inconclusive", (
            f"{interval}; round-to-round noise of {ev.cv:.1%} hides a {_pct(threshold)} change "
            f"with {n1} + {n2} rounds (smallest detectable {detectable:.1%}){settle}")
    return "inconclusive", (
        f"{interval}: the interval reaches beyond +-{_pct(threshold)} without a significant "
        f"change{settle}")


def judge_timing(
    ev: TimingEvidence, *, p_adjusted: float, family: int, alpha: float
) -> MetricComparison:
    """Timing verdict for one metric, given its Holm-adjusted p among `family` metrics.

    The detectable change and rounds needed use alpha / family (Holm's strictest step), so they
    hold for whichever metric the correction treats hardest.
    """
    metric, series = METRICS[ev.series.metric], ev.series
    n1, n2 = len(series.baseline), len(series.candidate)
    alpha_each = alpha / max(1, family)
    detectable = stats.detectable_change(ev.cv, n1, n2, alpha=alpha_each)
    needed = stats.rounds_needed(ev.cv, ev.policy.min_change, alpha=alpha_each)
    if needed is not None:
        needed = max(needed, MIN_TIMING_ROUNDS)
    verdict, reason = _timing_verdict(ev, p_adjusted, alpha, max(1, family), detectable,
                                      needed)
    method = "exact" if ev.test.method == "exact" else "normal-approximation"
    evidence = (f"timing, {n1} + {n2} rounds, {method} Mann-Whitney, Holm over {family} "
                f"{'gated' if ev.policy.gate else 'non-gated'} timing metrics")
    return MetricComparison(
        key=series.key, metric=series.metric, label=_label(series, metric), unit=metric.unit,
        kind=metric.kind, better=metric.better, step=series.step, gate=ev.policy.gate,
        min_change=ev.policy.min_change, baseline=ev.baseline, candidate=ev.candidate,
        change=ev.change, ci_low=ev.ci[0] if ev.ci else None,
        ci_high=ev.ci[1] if ev.ci else None, p_value=ev.test.p_value, p_adjusted=p_adjusted,
        detectable=detectable, rounds_needed=needed if verdict == "inconclusive" else None,
        noise=ev.noise, verdict=verdict, evidence=evidence, reason=reason,
        baseline_rounds=series.baseline, candidate_rounds=series.candidate, control=ev.control,
    )


def judge_all(
    series: list[Series], policies: dict[str, Policy], *, alpha: float, seed: int
) -> list[MetricComparison]:
    """Verdicts for every series; Holm's correction within the gated and the non-gated timing
    metrics separately, so informational metrics never dilute the gate's power (the gate's false
    alarm rate is the family-wise error rate of the gated metrics alone)."""
    judged: dict[str, MetricComparison] = {}
    timing: list[TimingEvidence] = []
    for s in series:
        if s.evidence == "timing":
            timing.append(timing_evidence(s, policies[s.key], alpha=alpha, seed=seed))
        else:
            judged[s.key] = judge_counter(s, policies[s.key])
    for gated in (True, False):
        family = [ev for ev in timing if ev.policy.gate is gated]
        adjusted = stats.holm([ev.test.p_value for ev in family])
        for ev, p_adj in zip(family, adjusted, strict=True):
            judged[ev.series.key] = judge_timing(ev, p_adjusted=p_adj, family=len(family),
                                                 alpha=alpha)
    return [judged[s.key] for s in series]


# ---------------------------------------------------------------------------------------------
# The overall verdict.


def _round_name(side: str, rnd: Round) -> str:
    step = f", {rnd.step:g} req/s" if rnd.step is not None else ""
    return f"{side} round {rnd.index} (instance {rnd.instance}{step})"


def invalid_reasons(results: Results, side: str, *, max_error_rate: float) -> list[str]:
    """Why a side's measurements cannot be trusted: rounds marked invalid, too many errors."""
    if not results.rounds and not results.instructions:
        return [f"the {side} has no rounds; re-run the experiment"]
    reasons = []
    for rnd in results.rounds:
        if not rnd.valid:
            reasons.append(f"{_round_name(side, rnd)}: {rnd.invalid_reason or 'marked invalid'}")
            continue
        errors, total = rnd.summary.get("errors"), len(rnd.requests)
        if errors is not None and total and errors / total > max_error_rate:
            reasons.append(
                f"{_round_name(side, rnd)}: {errors:g} of {total} requests failed "
                f"({errors / total:.1%}, limit {max_error_rate:.1%})")
    return reasons


def _error_limit(results: Results) -> float:
    limit = results.session.get("max_error_rate")
    return float(limit) if isinstance(limit, (int, float)) else MAX_ERROR_RATE


def _describe(m: MetricComparison) -> str:
    return f"{m.key} {_fmt(m.change)} ({m.reason})"


def _overall(
    metrics: list[MetricComparison], invalid: list[str], mismatches: list[str],
    allow_mismatch: bool,
) -> tuple[Overall, list[str], list[str]]:
    """The overall verdict, the reasons behind it, and warnings for people."""
    gated = [m for m in metrics if m.gate]
    regressions = [m for m in gated if m.verdict == "regression"]
    inconclusive = [m for m in gated if m.verdict == "inconclusive"]
    reasons = [f"invalid: {r}" for r in invalid]
    warnings = []
    if mismatches and allow_mismatch:
        warnings.append("compared despite different environments (--allow-mismatch): "
                        + "; ".join(mismatches))
    elif mismatches:
        reasons += [f"environment differs: {m}" for m in mismatches]
    reasons += [f"regression: {_describe(m)}" for m in regressions]
    reasons += [f"inconclusive: {_describe(m)}" for m in inconclusive]
    reasons += [f"not gated, reported only: {_describe(m)}"
                for m in metrics if not m.gate and m.verdict == "regression"]
    if inconclusive:
        warnings.append(
            f"WARNING: {len(inconclusive)} gated metric(s) inconclusive "
            f"({', '.join(m.key for m in inconclusive)}): this comparison could not tell whether "
            f"they changed. The build passes unless --fail-on-inconclusive is set.")
    if invalid:
        overall: Overall = "invalid"
    elif mismatches and not allow_mismatch:
        overall = "refused"
    elif not metrics:
        overall = "invalid"
        reasons.append("invalid: no metric was measured on both sides")
    elif regressions:
        overall = "regression"
    elif inconclusive or not gated:
        overall = "inconclusive"
        if not gated:
            reasons.append("inconclusive: no gated metric was measured on both sides")
    else:
        overall = "pass"
    return overall, reasons, warnings


def _headline(
    overall: Overall, metrics: list[MetricComparison], invalid: list[str], mismatches: list[str]
) -> str:
    """One sentence: what happened and why the build passed or failed."""
    gated = [m for m in metrics if m.gate]
    if overall == "invalid":
        first = invalid[0] if invalid else "no metric was measured on both sides"
        more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
        return f"Error, no verdict: the measurements cannot be trusted: {first}{more}."
    if overall == "refused":
        names = [m.split(":", 1)[0] for m in mismatches]
        if "experiment_hash" in names:  # not an environment: another experiment, or it changed
            others = [n for n in names if n != "experiment_hash"]
            also = f"; the environments also differ in {', '.join(others)}" if others else ""
            return ("Refused to compare: the two results come from different experiment "
                    f"definitions (another experiment, or its file or scenario changed){also}; "
                    "compare results of the same experiment, or pass --allow-mismatch when the "
                    "change is intended.")
        keys = ", ".join(names)
        return (f"Refused to compare: the environments differ in {keys}; compare runs from "
                f"matching agents, or pass --allow-mismatch to compare anyway.")
    if overall == "regression":
        worst = max((m for m in gated if m.verdict == "regression"),
                    key=lambda m: abs(m.change) if m.change is not None else math.inf)
        count = sum(m.verdict == "regression" for m in gated)
        more = f", and {count - 1} more gated metric(s) regressed" if count > 1 else ""
        return (f"Failed: {worst.key} got worse by {_fmt(worst.change)} "
                f"({worst.evidence.split(',')[0]}), beyond its {_pct(worst.min_change)} "
                f"minimum{more}.")
    if overall == "inconclusive":
        unsure = [m for m in gated if m.verdict == "inconclusive"]
        if not unsure:
            return "Inconclusive: no gated metric was measured on both sides."
        needed = max((m.rounds_needed or 0) for m in unsure)
        settle = f"; about {needed} rounds per side would settle it" if needed else ""
        improved = sum(m.verdict == "improvement" for m in gated)
        unchanged = sum(m.verdict == "unchanged" for m in gated)
        found = (f"{improved} gated metric(s) improved and none regressed" if improved else
                 f"no change found in the {unchanged} gated metric(s) that could be judged")
        return (f"Inconclusive: {found}, but {len(unsure)} could not be judged at their minimum "
                f"change in this session's noise ({', '.join(m.key for m in unsure)}){settle}.")
    improved = sum(m.verdict == "improvement" for m in gated)
    return (f"Passed: none of {len(gated)} gated metrics got worse by more than their minimum "
            f"({len(gated) - improved} unchanged, {improved} improved).")


def compare(
    baseline: Results,
    candidate: Results,
    *,
    allow_mismatch: bool = False,
    policies: Mapping[str, Any] | None = None,
    alpha: float = 0.01,
    seed: int = 0,
) -> Comparison:
    """Compare the candidate's results with the baseline's: per-metric verdicts, then overall.

    `policies` overrides gate/min_change per metric name ({"latency_p99": {"gate": True}}) on top
    of the candidate experiment's [metrics] table and the METRICS defaults. `alpha` is the
    family-wise false-alarm rate of the timing tests; `seed` seeds the bootstrap intervals.
    """
    resolved = resolve_policies(candidate, policies)
    series, warnings = collect_series(baseline, candidate)
    # what a load driver says about its own measurement (e.g. JMeter's closed loop) is shown
    warnings += [w for w in dict.fromkeys(baseline.warnings + candidate.warnings)
                 if w.startswith("load driver:")]
    metrics = judge_all(series, series_policies(series, resolved), alpha=alpha, seed=seed)
    invalid = (invalid_reasons(baseline, "baseline", max_error_rate=_error_limit(baseline))
               + invalid_reasons(candidate, "candidate", max_error_rate=_error_limit(candidate)))
    mismatches = fingerprint_mismatches(baseline.environment, candidate.environment)
    overall, reasons, more_warnings = _overall(metrics, invalid, mismatches, allow_mismatch)
    details = dict(probes.breakdown_details(baseline, candidate))
    if baseline.instructions and candidate.instructions:
        details["functions"] = function_changes(baseline.instructions, candidate.instructions)
        details["python_functions"] = python_function_changes(
            baseline.instructions.get("python"), candidate.instructions.get("python"))
    details["statistics"] = {"alpha": alpha, "seed": seed, "correction": "holm",
                             "bootstrap_resamples": BOOTSTRAP_RESAMPLES}
    return Comparison(
        baseline=baseline, candidate=candidate, metrics=tuple(metrics), overall=overall,
        headline=_headline(overall, metrics, invalid, mismatches), reasons=tuple(reasons),
        warnings=tuple(more_warnings + warnings), details=details,
    )


def exit_code(comparison: Comparison, *, fail_on_inconclusive: bool = False) -> int:
    """0 pass (and inconclusive by default), 1 invalid or refused, 2 regression (DESIGN.md 4.1)."""
    if comparison.overall in ("invalid", "refused"):
        return int(ExitCode.ERROR)
    if comparison.overall == "regression":
        return int(ExitCode.REGRESSION)
    if comparison.overall == "inconclusive" and fail_on_inconclusive:
        return int(ExitCode.REGRESSION)
    return int(ExitCode.OK)


# ---------------------------------------------------------------------------------------------
# verdict.json


def _plain(value: Any) -> Any:
    """JSON-safe values: tuples as lists, infinities and NaN as null (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _side_json(results: Results) -> dict[str, Any]:
    return {
        "label": results.label,
        "created_at": results.created_at,
        "experiment": {"name": results.experiment.name, "sha256": results.experiment.sha256},
        "environment": results.environment,
        "rounds": len(results.rounds),
    }


def comparison_to_json(comparison: Comparison) -> dict[str, Any]:
    """verdict.json content: overall verdict, headline, reasons, and every field per metric."""
    return _plain({
        "format_version": VERDICT_FORMAT_VERSION,
        "overall": comparison.overall,
        "headline": comparison.headline,
        "reasons": list(comparison.reasons),
        "warnings": list(comparison.warnings),
        "baseline": _side_json(comparison.baseline),
        "candidate": _side_json(comparison.candidate),
        "metrics": [asdict(m) for m in comparison.metrics],
        "details": comparison.details,
    })


def save_verdict(comparison: Comparison, path: Path) -> None:
    """Write verdict.json atomically (temporary file + rename)."""
    atomic_write_json(Path(path), comparison_to_json(comparison))
