"""Verdicts: compare a candidate's results with a baseline's, metric by metric, then overall.

compare() returns a Comparison; every renderer (harness.report) only reads it. The evidence and
thresholds behind each verdict are explained for users in docs/statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness import covariate, probes, stats
from harness.environment import fingerprint_mismatches
from harness.errors import ConfigError, ExitCode
from harness.files import atomic_write_json
from harness.instructions import function_changes
from harness.jmeter import THREADS_HELD
from harness.metrics import METRICS, Metric
from harness.pyfunctions import python_function_changes
from harness.results import Results, Round

# verdict.json format_version history:
#   1 (harness 0.1.0): first version.
#   2 (harness 0.2.0): paired, one-sided, sequential timing (per metric `paired`,
#     `rounds_needed_for_change`; details.statistics says the look, its level and the failures
#     per side); counters with intervals and floors; overload as a regression. Optional
#     later: per metric `adjusted` and details.statistics.covariate (the machine-speed covariate).
VERDICT_FORMAT_VERSION = 2

ALPHA = 0.01  # the chance of any false alarm among the gated metrics, over all looks
MAX_ERROR_RATE = 0.01  # default when the results do not record the experiment's limit
GATE_FRACTION = 0.5  # share of min_change a gated timing change must reach with confidence
DESCRIBE_FDR = 0.05  # false discovery rate among the metrics that do not gate
# Rates the open-loop driver sets: at a fixed offered rate they measure the rate, not the subject
DRIVER_FIXED = frozenset({"responses_per_s", "throughput_kbps"})

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
    rounds_needed_for_change: int | None = None  # pairs that would settle the change observed
    paired: bool = False  # judged on per-pair ratios of an interleaved session
    adjusted: dict[str, Any] | None = None  # the machine-speed covariate (harness.covariate)


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
    """Every metric's policy: METRICS default < the instruction tier's min_change <
    candidate.experiment.policies < `policies`.

    Keys are metric names, plus "metric@endpoint" for an endpoint's own override (present only
    when some layer names it); series_policies() turns these into one policy per series.
    """
    tier = (candidate.instructions or {}).get("min_change")  # [instructions] min_change
    layers = (("the instruction tier", {INSTRUCTIONS_METRIC: {"min_change": tier}}
               if isinstance(tier, (int, float)) else {}),
              ("the experiment's [metrics] table", candidate.experiment.policies),
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
    evidence: str  # "counter", "instructions", "profile" (counts of the profile run) or "timing"


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
        value = (entry.get("per_request_runs") or entry.get("per_request")
                 if isinstance(entry, Mapping) else None)
        values = value if isinstance(value, (list, tuple)) else [value]
        numbers = tuple(float(v) for v in values if isinstance(v, (int, float)))
        if numbers:
            out[str(name)] = numbers
    return out


def _profile_values(results: Results) -> dict[tuple[str, str], float]:
    """Per-endpoint probe counts of the function-profile run (harness.pyfunctions: "probes"
    under instructions["python"]), when the workload has two or more endpoints: a single
    endpoint's counts are the mix's, already judged from the rounds."""
    python = (results.instructions or {}).get("python")
    counts = python.get("probes") if isinstance(python, Mapping) else None
    if not isinstance(counts, Mapping) or len(counts) < 2:
        return {}
    out: dict[tuple[str, str], float] = {}
    for endpoint, values in counts.items():
        for metric, value in (values.items() if isinstance(values, Mapping) else ()):
            if metric in METRICS and isinstance(value, (int, float)) and math.isfinite(value):
                out[(metric, str(endpoint))] = float(value)
    return out


def _profile_series(baseline: Results, candidate: Results, taken: set[tuple[str, str | None]]
                    ) -> tuple[list[Series], list[str]]:
    """Series of the profile run's per-endpoint counts not already measured in the rounds."""
    base, cand = _profile_values(baseline), _profile_values(candidate)
    series, warnings = [], []
    one_sided = sorted({"baseline" if item in base else "candidate"
                        for item in set(base) ^ set(cand)})
    for side in one_sided:
        warnings.append(f"per-endpoint probe counts of the profile run exist only in the {side}; "
                        f"endpoints' counts are compared only where both sides have them.")
    order = {name: i for i, name in enumerate(METRICS)}
    for metric, endpoint in sorted(set(base) & set(cand), key=lambda k: (order[k[0]], k[1])):
        if (metric, endpoint) in taken:
            continue
        series.append(Series(_key(metric, None, False, 1, endpoint), metric, None, 1, endpoint,
                             (base[(metric, endpoint)],), (cand[(metric, endpoint)],), "profile"))
    return series, warnings


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
    taken = {(s.metric, s.endpoint) for s in series if s.step is None or not sweep}
    profiled, more = _profile_series(baseline, candidate, taken)
    return series + profiled, warnings + more


_METRIC_ORDER = {name: i for i, name in enumerate(METRICS)}


def _order(item: ValueKey) -> tuple[int, float, int, str]:
    """Declaration order of METRICS (counters first: the most reliable evidence), step, instance,
    the mix before its endpoints."""
    metric, step, instance, endpoint = item
    return (_METRIC_ORDER[metric], -1.0 if step is None else step, instance,
            "" if endpoint is None else "\0" + endpoint)


# ---------------------------------------------------------------------------------------------
# Counters and instruction counts: nearly deterministic, judged with a margin and a floor.


def _worse(change: float, metric: Metric) -> float:
    """The change signed so that positive means worse for this metric."""
    return change if metric.better == "lower" else -change


def _fmt(change: float | None) -> str:
    return "n/a" if change is None else f"{change:+.1%}"


def _pct(fraction: float) -> str:
    """A threshold as people write it: 0.1 -> "10%", 0.005 -> "0.5%"."""
    return f"{fraction * 100:.3g}%"


def _spread(values: tuple[float, ...]) -> float:
    """(max - min) / |median| of one side's rounds; 0 for a single value."""
    if len(values) < 2:
        return 0.0
    mid = stats.median(values)
    width = max(values) - min(values)
    if mid == 0:
        return 0.0 if width == 0 else math.inf
    return width / abs(mid)


def _comparison(series: Series, policy: Policy, **values: Any) -> MetricComparison:
    metric = METRICS[series.metric]
    return MetricComparison(
        key=series.key, metric=series.metric, label=_label(series, metric), unit=metric.unit,
        kind=metric.kind, better=metric.better, step=series.step, gate=policy.gate,
        min_change=policy.min_change, baseline_rounds=series.baseline,
        candidate_rounds=series.candidate, **values)


def judge_counter(series: Series, policy: Policy, *, alpha: float = ALPHA) -> MetricComparison:
    """Counter test with a margin: the Hodges-Lehmann shift of candidate over baseline values
    with its distribution-free interval (each bound one-sided at 1 - alpha; with too few rounds
    for that level, the extreme differences stand in), relative to the baseline's median.

    regression: the interval clears zero the bad way and the estimate reaches min_change and the
    metric's absolute floor. unchanged: the whole interval lies strictly within +-min_change (or
    within the floor). Anything else: inconclusive. One round per side still decides (counters
    varied 0-0.1% between runs, DESIGN.md 8): the interval is then the single difference.
    """
    metric = METRICS[series.metric]
    threshold, floor = policy.min_change, metric.floor
    base, cand = stats.median(series.baseline), stats.median(series.candidate)
    n1, n2 = len(series.baseline), len(series.candidate)
    shift = stats.shift_interval(series.baseline, series.candidate, alpha=alpha, clip=True)
    kind = {"instructions": "instructions under valgrind",
            "profile": "counter of the function-profile run"}.get(series.evidence, "counter")
    unit = "run" if series.evidence in ("instructions", "profile") else "round"
    margin = "Hodges-Lehmann interval" if max(n1, n2) > 1 else "no margin from one value per side"
    evidence = (f"{kind}, {n1} + {n2} {unit}s, {margin}, threshold {_pct(threshold)}"
                + (f", floor {floor:g} {metric.unit}" if floor else ""))
    sign = 1.0 if metric.better == "lower" else -1.0
    worse_est, worse_low, worse_high = (sign * shift.estimate,
                                        *sorted((sign * shift.low, sign * shift.high)))
    scale = abs(base)
    relative = (lambda x: x / scale) if scale else (lambda x: None)
    change = relative(shift.estimate) if scale else (0.0 if shift.estimate == 0 else None)
    low, high = (relative(shift.low), relative(shift.high)) if scale else (None, None)
    allowed = max(threshold * scale, floor)  # the largest change that does not matter
    verdict: MetricVerdict
    interval = (f"{_fmt(change)} (interval {_fmt(low)} to {_fmt(high)})" if scale else
                f"{base:g} -> {cand:g} {metric.unit}")
    reaches = (lambda change: change >= allowed) if allowed > 0 else (lambda change: change > 0)
    if worse_low > 0 and reaches(worse_est):
        verdict = "regression"
        reason = f"{interval}: worse, reaching the {_limit(threshold, floor, metric)}"
    elif -worse_high > 0 and reaches(-worse_est):
        verdict = "improvement"
        reason = f"{interval}: better, reaching the {_limit(threshold, floor, metric)}"
    elif worse_high < allowed and -worse_low < allowed or worse_high == worse_low == 0:
        verdict = "unchanged"
        reason = f"{interval}: within the {_limit(threshold, floor, metric)}"
    else:
        verdict = "inconclusive"
        spread = max(_spread(series.baseline), _spread(series.candidate))
        reason = (f"{interval}: its rounds varied by {spread:.1%} and the interval reaches "
                  f"beyond the {_limit(threshold, floor, metric)} "
                  f"without clearing it; more rounds would settle it")
    return _comparison(
        series, policy, baseline=base, candidate=cand, change=change, ci_low=low, ci_high=high,
        p_value=None, p_adjusted=None, detectable=None, rounds_needed=None,
        noise=max(_spread(series.baseline), _spread(series.candidate)) if max(n1, n2) > 1
        else None, verdict=verdict, evidence=evidence, reason=reason)


def _limit(threshold: float, floor: float, metric: Metric) -> str:
    text = f"{_pct(threshold)} threshold"
    return text + (f" and the {floor:g} {metric.unit} floor" if floor else "")


def judge_errors(series: Series, policy: Policy, exposure: tuple[float, float], *,
                 alpha: float = ALPHA) -> MetricComparison:
    """Errors: an exact test on the counts given the requests each side sent (conditional
    binomial: with equal failure rates the candidate's share of all failures follows its share
    of the requests). Regression when p < alpha and the candidate's rate is higher."""
    e_b, e_c = int(round(sum(series.baseline))), int(round(sum(series.candidate)))
    r_b, r_c = exposure
    p_worse = stats.binomial_excess_p(e_b, int(r_b), e_c, int(r_c))
    p_better = stats.binomial_excess_p(e_c, int(r_c), e_b, int(r_b))
    base, cand = stats.median(series.baseline), stats.median(series.candidate)
    rate_b, rate_c = (e_b / r_b if r_b else 0.0), (e_c / r_c if r_c else 0.0)
    counts = f"{e_c:d} failed of {int(r_c)} in the candidate, {e_b:d} of {int(r_b)} in the baseline"
    verdict: MetricVerdict
    if p_worse < alpha and rate_c > rate_b:
        verdict, reason = "regression", f"{counts}: more than chance gives (p = {p_worse:.2g})"
    elif p_better < alpha and rate_b > rate_c:
        verdict, reason = "improvement", f"{counts}: fewer than chance gives (p = {p_better:.2g})"
    else:
        verdict, reason = "unchanged", f"{counts}: a difference chance gives (p = {p_worse:.2g})"
    return _comparison(
        series, policy, baseline=base, candidate=cand,
        change=stats.relative_change(rate_b, rate_c), ci_low=None, ci_high=None,
        p_value=p_worse, p_adjusted=None, detectable=None, rounds_needed=None, noise=None,
        verdict=verdict, evidence="counter, exact test on error counts given the requests",
        reason=reason)


def _label(series: Series, metric: Metric) -> str:
    suffix = f" [{series.endpoint}]" if series.endpoint else ""
    if series.instance != 1:
        suffix += f" (instance {series.instance})"
    return metric.label + suffix


# ---------------------------------------------------------------------------------------------
# Timing: noisy. Interleaved sessions are judged on per-pair log ratios with a one-sided
# sign-flip test (max-T over the gated family) at the level this look may spend; results from
# two separate runs by one-sided rank tests with Holm's correction.


@dataclass(frozen=True)
class Design:
    """How timing is judged in this comparison.

    `level`: the nominal one-sided level of this look (perf's sequential plan spends alpha over
    its looks; a single comparison spends all of it). `look`/`planned`: the pairs judged now and
    the most the plan allows. `confirmed`: False when the two sides were measured at different
    times (a nightly artifact): gated timing can then neither fail nor pass.
    """

    level: float = ALPHA
    look: int | None = None
    planned: int | None = None
    confirmed: bool = True


def _pairs(baseline: Results, candidate: Results) -> int | None:
    """Pairs of an interleaved session both sides come from, else None (unpaired)."""
    b, c = baseline.session, candidate.session
    if b.get("mode") != "interleaved" or c.get("mode") != "interleaved":
        return None
    if b.get("seed") != c.get("seed") or not isinstance(b.get("pairs"), int):
        return None
    return int(b["pairs"])


def _paired(series: Series, pairs: int | None) -> bool:
    return (pairs is not None and len(series.baseline) == len(series.candidate) == pairs
            and min(series.baseline + series.candidate) > 0)


def _log_ratios(series: Series) -> np.ndarray:
    return np.log(np.asarray(series.candidate)) - np.log(np.asarray(series.baseline))


def _rel(x: float) -> float:
    return math.expm1(x) if math.isfinite(x) else x


Covariates = dict[float | None, dict[str, np.ndarray]]  # per step, per clock: per-pair log ratios


def _adjusted(family: list[Series], worse: Any, covariates: Covariates | None,
              ) -> tuple[Any, list[covariate.Adjustment | None]]:
    """Each metric's oriented log ratios after the machine-speed covariate, where it helps."""
    if not covariates:
        return worse, [None] * len(family)
    rows: list[Any] = []
    notes: list[covariate.Adjustment | None] = []
    for s, d in zip(family, worse, strict=True):
        clock = covariate.clock_for(s.metric)
        row, note = covariate.adjust(s.key, d, covariates.get(s.step, {}).get(clock),
                                     covariate=covariate.name(clock))
        rows.append(row)
        notes.append(note)
    return np.stack(rows), notes


def _judge_paired_family(family: list[Series], policies: dict[str, Policy], design: Design, *,
                         alpha: float, seed: int,
                         covariates: Covariates | None = None) -> list[MetricComparison]:
    """Gated timing of an interleaved session: one max-T sign-flip test over the family, on log
    ratios adjusted for the machine's speed where the calibration helps (harness.covariate)."""
    if not family:
        return []
    signs = np.array([1.0 if METRICS[s.metric].better == "lower" else -1.0 for s in family])
    worse = np.stack([_log_ratios(s) for s in family]) * signs[:, None]
    worse, notes = _adjusted(family, worse, covariates)
    up = stats.sign_flip_test(worse, level=design.level, seed=seed)
    down = stats.sign_flip_test(-worse, level=design.level, seed=seed)
    out = []
    for j, s in enumerate(family):
        policy = policies[s.key]
        d = worse[j]
        n = len(d)
        shift = stats.paired_shift_interval(d, alpha=design.level)
        sd = float(np.std(d, ddof=1)) if n > 1 else math.inf
        # the power of the test actually used, at this session's spread read median-unbiased
        spread = stats.median_unbiased_sd(sd, n - 1)
        detectable = _rel(stats.signed_rank_detectable(n, up.level_each or 0.0) * spread)
        final_level = alpha / len(family)
        needed = stats.pairs_needed(spread, math.log1p(policy.min_change), level=final_level)
        observed = abs(shift.estimate)
        needed_observed = (stats.pairs_needed(spread, observed, level=final_level)
                           if observed > 0 else None)
        worse_est, worse_low, worse_high = _rel(shift.estimate), _rel(shift.low), _rel(shift.high)
        threshold = policy.min_change
        look = (f"look {design.look} of {design.planned} planned, " if design.planned else "")
        evidence = (f"timing, {n} interleaved pairs, {look}one-sided sign-flip signed-rank test, "
                    f"max-T over {len(family)} gated timing metric(s), level {design.level:.2g}")
        note = notes[j]
        if note is not None and note.used:
            evidence += (f"; adjusted for machine speed (the calibration removed "
                         f"{max(0.0, note.variance_removed or 0.0):.0%} of the per-pair variance)")
        # too few pairs for any bound at this level: say so, not "-inf% to +inf%"
        bounds = (f"one-sided bounds {_fmt(worse_low)} to {_fmt(worse_high)} worse"
                  if math.isfinite(shift.low) and math.isfinite(shift.high)
                  else f"no bound at level {design.level:.2g} from {n} pair(s)")
        interval = (f"{_fmt(worse_est * (1 if signs[j] > 0 else -1))} ({bounds}, "
                    f"p = {up.p_family[j]:.2g})")
        verdict: MetricVerdict
        if (up.p_family[j] <= design.level and worse_est >= threshold
                and worse_low >= GATE_FRACTION * threshold):
            verdict, reason = "regression", (
                f"{interval}: worse by at least {_pct(GATE_FRACTION * threshold)} with "
                f"confidence, and by {_fmt(worse_est)} as estimated, beyond the "
                f"{_pct(threshold)} minimum")
        elif (down.p_family[j] <= design.level and -worse_est >= threshold
              and -worse_high >= GATE_FRACTION * threshold):
            verdict, reason = "improvement", (
                f"{interval}: better, beyond the {_pct(threshold)} minimum")
        elif shift.reached and worse_high < threshold and -worse_low < threshold:
            verdict, reason = "unchanged", (
                f"{interval}: within +-{_pct(threshold)}; timing resolution here "
                f"+-{detectable:.1%}")
        else:
            settle = f"; about {needed} pairs would settle a {_pct(threshold)} change" if needed \
                else ""
            if needed_observed and observed >= math.log1p(GATE_FRACTION * threshold):
                settle += f", about {needed_observed} the {_fmt(worse_est)} observed"
            resolution = (f"timing resolution at +-{detectable:.1%}" if math.isfinite(detectable)
                          else "no change detectable at this look's level")
            verdict, reason = "inconclusive", (
                f"{interval}: the noise of {sd:.1%} per pair leaves {resolution} with {n} "
                f"pairs{settle}" if math.isfinite(sd) else
                f"{interval}: one pair has no spread to judge timing by (the session stopped "
                f"before its first look, or ran one pair)")
        base, cand = stats.median(s.baseline), stats.median(s.candidate)
        change = _rel(shift.estimate * signs[j])
        lo, hi = sorted((_rel(shift.low * signs[j]), _rel(shift.high * signs[j])))
        out.append(_comparison(
            s, policy, baseline=base, candidate=cand, change=change, ci_low=lo, ci_high=hi,
            p_value=up.p_each[j], p_adjusted=up.p_family[j], detectable=detectable,
            rounds_needed=needed, noise=stats.coefficient_of_variation(s.baseline),
            verdict=verdict, evidence=evidence, reason=reason,
            control=stats.split_half_change(s.baseline),
            rounds_needed_for_change=needed_observed, paired=True,
            adjusted=None if note is None else note.to_json()))
    return out


def _judge_unpaired_family(family: list[Series], policies: dict[str, Policy], design: Design, *,
                           alpha: float) -> list[MetricComparison]:
    """Gated timing of two separate runs: one-sided Mann-Whitney each way, Holm over the family,
    Hodges-Lehmann interval of the log ratio. Unconfirmed (artifact) timing never decides."""
    if not family:
        return []
    logs = [(np.log(np.maximum(s.baseline, 1e-300)), np.log(np.maximum(s.candidate, 1e-300)))
            for s in family]
    signs = [1.0 if METRICS[s.metric].better == "lower" else -1.0 for s in family]
    oriented = [((b * g).tolist(), (c * g).tolist()) for (b, c), g in zip(logs, signs, strict=True)]
    p_worse = [stats.mann_whitney_one_sided(c, b) for b, c in oriented]
    p_better = [stats.mann_whitney_one_sided(b, c) for b, c in oriented]
    adj_worse, adj_better = stats.holm(p_worse), stats.holm(p_better)
    out = []
    for j, s in enumerate(family):
        policy = policies[s.key]
        b, c = oriented[j]
        n1, n2 = len(b), len(c)
        shift = stats.shift_interval(b, c, alpha=alpha)
        worse_est, worse_low, worse_high = _rel(shift.estimate), _rel(shift.low), _rel(shift.high)
        threshold = policy.min_change
        # the power of the test actually used: the exact one-sided Mann-Whitney at Holm's first
        # step (alpha over the family), at the pooled spread of the log values
        level = alpha / len(family)
        lb, lc = logs[j]
        sd = (math.sqrt((float(np.var(lb, ddof=1)) * (n1 - 1) + float(np.var(lc, ddof=1))
                         * (n2 - 1)) / (n1 + n2 - 2)) if n1 > 1 and n2 > 1 else math.inf)
        spread = stats.median_unbiased_sd(sd, n1 + n2 - 2)
        detectable = _rel(stats.rank_sum_detectable(n1, n2, level) * spread)
        needed = stats.rounds_per_side_needed(spread, math.log1p(threshold), level=level)
        observed = abs(shift.estimate)
        needed_observed = (stats.rounds_per_side_needed(spread, observed, level=level)
                           if observed > 0 else None)
        interval = (f"{_fmt(worse_est * signs[j])} (bounds {_fmt(worse_low)} to "
                    f"{_fmt(worse_high)} worse, adjusted p = {adj_worse[j]:.2g})")
        evidence = (f"timing, {n1} + {n2} rounds of separate runs, one-sided Mann-Whitney, "
                    f"Holm over {len(family)} gated timing metric(s)")
        verdict: MetricVerdict
        if not design.confirmed:
            verdict, reason = "inconclusive", (
                f"{interval}: measured against results from another time and agent, timing "
                f"needs the same-agent re-run to fail or pass the build")
            evidence += "; not confirmed on this agent"
        elif (adj_worse[j] < alpha and worse_est >= threshold
              and worse_low >= GATE_FRACTION * threshold):
            verdict, reason = "regression", f"{interval}: beyond the {_pct(threshold)} minimum"
        elif (adj_better[j] < alpha and -worse_est >= threshold
              and -worse_high >= GATE_FRACTION * threshold):
            verdict, reason = "improvement", f"{interval}: beyond the {_pct(threshold)} minimum"
        elif shift.reached and worse_high < threshold and -worse_low < threshold:
            verdict, reason = "unchanged", f"{interval}: within +-{_pct(threshold)}"
        else:
            settle = (f"; about {needed} rounds per side would settle a {_pct(threshold)} "
                      f"change" if needed else "")
            if needed_observed and observed >= math.log1p(GATE_FRACTION * threshold):
                settle += f", about {needed_observed} the {_fmt(worse_est)} observed"
            smallest = (f"the smallest detectable change at {detectable:.1%}"
                        if math.isfinite(detectable) else "no change detectable")
            verdict, reason = "inconclusive", (
                f"{interval}: round-to-round noise of {sd:.1%} leaves {smallest} with "
                f"{n1} + {n2} rounds{settle}")
        lo, hi = sorted((_rel(shift.low * signs[j]), _rel(shift.high * signs[j])))
        out.append(_comparison(
            s, policy, baseline=stats.median(s.baseline), candidate=stats.median(s.candidate),
            change=_rel(shift.estimate * signs[j]), ci_low=lo, ci_high=hi, p_value=p_worse[j],
            p_adjusted=adj_worse[j], detectable=detectable, rounds_needed=needed,
            noise=stats.coefficient_of_variation(s.baseline), verdict=verdict,
            evidence=evidence, reason=reason, control=stats.split_half_change(s.baseline),
            rounds_needed_for_change=needed_observed))
    return out


def _describe_ungated(family: list[Series], policies: dict[str, Policy],
                      pairs: int | None) -> list[MetricComparison]:
    """Metrics that do not gate: a t interval on the log ratio (paired when the session is),
    Benjamini-Hochberg over them at DESCRIBE_FDR, so a large change shows as a change."""
    evidence_of = {}
    for s in family:
        evidence_of[s.key] = stats.log_mean_interval(
            s.baseline, s.candidate, paired=_paired(s, pairs), level=1 - DESCRIBE_FDR)
    tested = [s for s in family if evidence_of[s.key] is not None]
    p_values = [e.p_value for e in (evidence_of[s.key] for s in tested) if e is not None]
    adjusted = dict(zip((s.key for s in tested), stats.benjamini_hochberg(p_values),
                        strict=True))
    out = []
    for s in family:
        policy, metric = policies[s.key], METRICS[s.metric]
        ev = evidence_of[s.key]
        base, cand = stats.median(s.baseline), stats.median(s.candidate)
        fixed = s.metric in DRIVER_FIXED
        how = "paired t" if _paired(s, pairs) else "Welch t"
        evidence = (f"timing, not gated: {how} on log ratios, Benjamini-Hochberg over "
                    f"{len(tested)} metrics at {DESCRIBE_FDR:g}")
        if fixed:
            evidence = "set by the driver's fixed rate: shown, not tested as timing evidence"
        verdict: MetricVerdict
        change: float | None
        lo: float | None
        hi: float | None
        p: float | None
        padj: float | None
        if ev is None:
            verdict, reason = "inconclusive", "too few rounds or a value of 0: no interval"
            change, lo, hi, p, padj = stats.relative_change(base, cand), None, None, None, None
        else:
            change, lo, hi = _rel(ev.estimate), _rel(ev.low), _rel(ev.high)
            p, padj = ev.p_value, adjusted[s.key]
            worse = _worse(change, metric)
            interval = f"{_fmt(change)} ({1 - DESCRIBE_FDR:.0%} interval {_fmt(lo)} to {_fmt(hi)})"
            if not fixed and padj < DESCRIBE_FDR and abs(change) >= policy.min_change:
                verdict = "regression" if worse > 0 else "improvement"
                reason = f"{interval}, beyond the {_pct(policy.min_change)} minimum"
            elif -policy.min_change < lo and hi < policy.min_change:
                verdict, reason = "unchanged", f"{interval}, within +-{_pct(policy.min_change)}"
            else:
                verdict, reason = "inconclusive", (
                    f"{interval}: not a clear change at this session's noise")
        out.append(_comparison(
            s, policy, baseline=base, candidate=cand, change=change, ci_low=lo, ci_high=hi,
            p_value=p, p_adjusted=padj, detectable=None, rounds_needed=None,
            noise=stats.coefficient_of_variation(s.baseline), verdict=verdict,
            evidence=evidence, reason=reason, paired=_paired(s, pairs)))
    return out


def _exposure(results: Results) -> float:
    """Requests sent in the valid loaded rounds (or their count when no request log is kept)."""
    rounds = [r for r in results.rounds if r.valid and r.instance == 1]
    requests = sum(len(r.requests) for r in rounds)
    return float(requests) if requests else float(len(rounds))


def judge_all(
    series: list[Series], policies: dict[str, Policy], *, alpha: float, seed: int,
    design: Design | None = None, pairs: int | None = None,
    exposure: tuple[float, float] = (1.0, 1.0), covariates: Covariates | None = None,
) -> list[MetricComparison]:
    """Verdicts for every series: counters and instructions alone; gated timing in one family
    (paired max-T when every gated series has all pairs, else unpaired with Holm); metrics that
    do not gate described in a family of their own."""
    design = design or Design(level=alpha)
    judged: dict[str, MetricComparison] = {}
    gated_timing: list[Series] = []
    ungated_timing: list[Series] = []
    for s in series:
        policy = policies[s.key]
        if s.metric in DRIVER_FIXED and policy.gate:  # the driver sets it: never gates
            policies = {**policies, s.key: Policy(gate=False, min_change=policy.min_change)}
            policy = policies[s.key]
        if s.evidence != "timing":
            judged[s.key] = (judge_errors(s, policy, exposure, alpha=alpha)
                             if s.metric == "errors" else judge_counter(s, policy, alpha=alpha))
        elif policy.gate and s.metric not in DRIVER_FIXED:
            gated_timing.append(s)
        else:
            ungated_timing.append(s)
    paired = [s for s in gated_timing if _paired(s, pairs)]
    unpaired = [s for s in gated_timing if not _paired(s, pairs)]
    for m in (_judge_paired_family(paired, policies, design, alpha=alpha, seed=seed,
                                   covariates=covariates)
              + _judge_unpaired_family(unpaired, policies, design, alpha=alpha)
              + _describe_ungated(ungated_timing, policies, pairs)):
        judged[m.key] = m
    return [judged[s.key] for s in series]


# ---------------------------------------------------------------------------------------------
# Overload: a subject that cannot keep up with the rate is a result, not a broken measurement.


DRIVER_LAG = "the load driver fell behind"
JMETER_LAG = "JMeter fell behind"
BUSY_CPU = 0.5  # CPU seconds per second of the subject's tree: busy, not idle, while lagging


@dataclass(frozen=True)
class Failures:
    """What went wrong on one side: rounds the subject failed (errors, timeouts, a driver held
    up by a subject that did not answer) and rounds the harness failed (a lagging driver with an
    idle subject, anything else marked invalid)."""

    requests: int
    errors: int
    timeouts: int
    overloaded: tuple[str, ...]  # one line per round the subject could not sustain
    broken: tuple[str, ...]  # one line per round the harness got wrong
    rounds: int = 0  # rounds the side ran
    # the overloaded rounds as (index, instance): every request answered (the driver lagged
    # beside the busy subject), or some failed
    answered: tuple[tuple[int, int], ...] = ()
    failed: tuple[tuple[int, int], ...] = ()


def _round_name(side: str, rnd: Round) -> str:
    step = f", {rnd.step:g} req/s" if rnd.step is not None else ""
    return f"{side} round {rnd.index} (instance {rnd.instance}{step})"


def _driver_lag(reason: str) -> bool:
    return reason.startswith(DRIVER_LAG) or reason.startswith(JMETER_LAG)


def _bad_requests(rnd: Round) -> int:
    """Requests that failed or got an error status (the summary's count where no log is kept)."""
    log = rnd.requests
    if not len(log):
        return int(rnd.summary.get("errors") or 0)
    return sum(1 for s, e in zip(log.status, log.error, strict=True)
               if e is not None or not 0 < s < 400)


def round_failure(rnd: Round, *, max_error_rate: float) -> tuple[str, str] | None:
    """Whose fault a failed round is: ("overloaded", why) when the subject could not sustain the
    rate (too many failed requests, or a driver held up while the subject was busy, failing, or
    holding every thread of a closed-loop driver such as JMeter),
    ("broken", why) when the harness got it wrong (a driver lagging beside an idle subject, or
    anything else marked invalid); None for a good round."""
    total = len(rnd.requests)
    bad = _bad_requests(rnd)
    reason = rnd.invalid_reason or ""
    cpu = rnd.summary.get("cpu_seconds")
    busy = ((cpu is not None and rnd.duration > 0 and cpu / rnd.duration >= BUSY_CPU) or bad > 0
            or THREADS_HELD in reason)
    if total and bad / total > max_error_rate:
        return "overloaded", (f"{bad} of {total} requests failed ({bad / total:.1%}, "
                              f"limit {max_error_rate:.1%})")
    if rnd.valid:
        return None
    if _driver_lag(reason) and busy:
        return "overloaded", f"the subject did not keep up ({reason})"
    return "broken", reason or "marked invalid"


def driver_lagged(rnd: Round) -> bool:
    """A round whose load driver fell behind its schedule while every request was answered. The
    agent's other load may have taken the driver's core (then the subject sat idle), or a busy
    subject may have: only a second round tells a passing load from the subject's own. A perf
    session runs such a round again (at most `perf.RERUNS` a session) instead of judging it."""
    return not rnd.valid and _driver_lag(rnd.invalid_reason or "") and _bad_requests(rnd) == 0


def failures(results: Results, side: str, *, max_error_rate: float) -> Failures:
    """Sort a side's failed rounds into the subject's (overload) and the harness' (broken)."""
    overloaded: list[str] = []
    broken: list[str] = []
    answered: list[tuple[int, int]] = []
    failed_rounds: list[tuple[int, int]] = []
    requests = errors = timeouts = 0
    for rnd in results.rounds:
        log = rnd.requests
        failed = [e for e in log.error if e is not None] if len(log) else []
        bad = _bad_requests(rnd)
        requests += len(log)
        errors += bad
        timeouts += sum(1 for e in failed if "timeout" in e.lower())
        failure = round_failure(rnd, max_error_rate=max_error_rate)
        if failure is None:
            continue
        kind, why = failure
        (overloaded if kind == "overloaded" else broken).append(f"{_round_name(side, rnd)}: {why}")
        if kind == "overloaded":
            (failed_rounds if bad else answered).append((rnd.index, rnd.instance))
    return Failures(requests, errors, timeouts, tuple(overloaded), tuple(broken),
                    rounds=len(results.rounds), answered=tuple(answered),
                    failed=tuple(failed_rounds))


def _error_limit(baseline: Results, candidate: Results) -> float:
    """The experiment's max_error_rate as results.json records it (session), the candidate's
    first; MAX_ERROR_RATE only for results written before it was recorded."""
    for results in (candidate, baseline):
        limit = results.session.get("max_error_rate")
        if isinstance(limit, (int, float)):
            return float(limit)
    return MAX_ERROR_RATE


@dataclass(frozen=True)
class Overload:
    """Whether the candidate could not sustain the rate where the baseline could: `regression`
    says so with the numbers, `unsure` when too few of its rounds failed to tell that from chance;
    `invalid` when both sides failed most of their rounds (the rate is beyond the code on either
    side: the experiment's to fix), `warnings` for failed rounds left out."""

    regression: str | None = None
    unsure: str | None = None
    invalid: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def judge_overload(base: Failures, cand: Failures, *, alpha: float) -> Overload:
    """Exact tests, as for the error counter, of the candidate failing more than the baseline:
    its failed requests given the requests each side sent, and its failed rounds given the rounds
    each side ran (a lagging driver fails a round without failing a request); alpha is split
    between the two. One round in eight with a few timeouts is what chance gives; every round
    timing out is not."""
    if not base.overloaded and not cand.overloaded:
        return Overload()
    p_requests = stats.binomial_excess_p(base.errors, base.requests, cand.errors, cand.requests)
    p_rounds = stats.binomial_excess_p(len(base.overloaded), base.rounds, len(cand.overloaded),
                                       cand.rounds)
    p = min(p_requests, p_rounds)
    counts = (f"in {len(cand.overloaded)} of {cand.rounds} round(s), the baseline in "
              f"{len(base.overloaded)} of {base.rounds}")
    if cand.overloaded and p < alpha / 2:
        return Overload(regression=f"{_overload_sentence(cand, base)} ({counts}; p = {p:.2g})")
    if (base.overloaded and cand.overloaded and 2 * len(base.overloaded) >= base.rounds
            and 2 * len(cand.overloaded) >= cand.rounds):
        return Overload(invalid=("both sides failed to sustain the rate: " + base.overloaded[0],
                                 cand.overloaded[0]))
    warnings = [_overload_note(side, fail) for side, fail in (("baseline", base),
                                                               ("candidate", cand))
                if fail.overloaded]
    if not cand.failed:  # lags only: counted in, timing judges them
        return Overload(warnings=tuple(warnings))
    return Overload(unsure=f"{counts}: too few to tell from chance (p = {p:.2g}); more rounds "
                           f"would settle it", warnings=tuple(warnings))


def _overload_note(side: str, fail: Failures) -> str:
    """What became of a side's rounds that could not sustain the rate, when that is no verdict:
    rounds with failed requests are left out; rounds whose driver fell behind beside the busy
    subject, every request answered, are measurements and counted in."""
    parts = ([f"{len(fail.failed)} left out (failed requests)"] if fail.failed else []) + (
        [f"{len(fail.answered)} counted in as measured (every request answered, latency from "
         f"the intended send times)"] if fail.answered else [])
    return (f"the {side} could not sustain the rate in {len(fail.overloaded)} of {fail.rounds} "
            f"round(s): {'; '.join(parts)}: {fail.overloaded[0]}")


def _overloaded_counted(results: Results, fail: Failures, *, all_of_them: bool) -> Results:
    """The side with rounds it could not sustain counted in as measured (answered requests,
    CPU, queries): always those whose every request was answered (the driver fell behind beside
    the busy subject), and with `all_of_them` every one, for a candidate whose overload is the
    verdict (what the report shows of it)."""
    counted = set(fail.answered + (fail.failed if all_of_them else ()))
    if not counted:
        return results
    return replace(results, rounds=tuple(
        replace(r, valid=True) if (r.index, r.instance) in counted else r
        for r in results.rounds))


def _no_overload_improvement(m: MetricComparison) -> MetricComparison:
    """Beside an overload, a per-request figure of the candidate that fell is no improvement to
    trust: its rounds count requests it never answered (fewer queries, fewer bytes written per
    request sent). A figure that rose despite that stands."""
    if m.verdict != "improvement":
        return m
    return replace(m, verdict="inconclusive", reason=(
        f"{m.reason}; not an improvement to trust: the candidate could not sustain the rate, and "
        f"its figures count requests it never answered"))


def _one_sided_summary(warnings: list[str]) -> list[str]:
    """Beside an overload, the metrics measured on one side only (no answered request, no
    latency) in one line instead of one line each."""
    one_sided = [w for w in warnings if "measured only in the baseline" in w
                 or "per-endpoint results exist only in the baseline" in w]
    keys = [w.split(":", 1)[0] for w in one_sided if "measured only in" in w]
    if not one_sided:
        return warnings
    rest = [w for w in warnings if w not in one_sided]
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return rest + [f"measured only in the baseline, not compared: {shown or 'per-endpoint results'}"
                   f" (the candidate's rounds could not sustain the rate)"]


def _overload_sentence(fail: Failures, other: Failures) -> str:
    """"the candidate timed out on 127 of 300 requests; the baseline on 0 of 300"."""
    if fail.timeouts:
        return (f"the candidate timed out on {fail.timeouts} of {fail.requests} requests; "
                f"the baseline on {other.timeouts} of {other.requests}")
    return (f"the candidate failed {fail.errors} of {fail.requests} requests; "
            f"the baseline {other.errors} of {other.requests}")


def invalid_reasons(results: Results, side: str, *, max_error_rate: float) -> list[str]:
    """Why a side's measurements cannot be trusted (every failed round, either cause)."""
    if not results.rounds and not results.instructions:
        return [f"the {side} has no rounds; re-run the experiment"]
    found = failures(results, side, max_error_rate=max_error_rate)
    return list(found.broken + found.overloaded)


# ---------------------------------------------------------------------------------------------
# The overall verdict.


def _describe(m: MetricComparison) -> str:
    return f"{m.key} {_fmt(m.change)} ({m.reason})"


def _metric_of(key: str) -> str:
    for mark in ("[", "@", "#"):
        key = key.split(mark)[0]
    return key


@dataclass(frozen=True)
class _Facts:
    """Everything the overall verdict rests on besides the per-metric verdicts."""

    invalid: list[str]
    overload: str | None
    overload_unsure: str | None
    missing: list[str]  # gated metrics measured on one side only
    mismatches: list[str]
    allow_mismatch: bool
    design: Design


def _exact(m: MetricComparison) -> bool:
    return m.kind != "timing"


def _overall(
    metrics: list[MetricComparison], facts: _Facts
) -> tuple[Overall, list[str], list[str]]:
    """The overall verdict, the reasons behind it, and warnings for people."""
    gated = [m for m in metrics if m.gate]
    regressions = [m for m in gated if m.verdict == "regression"]
    exact_open = [m for m in gated if _exact(m) and m.verdict == "inconclusive"]
    timing_open = [m for m in gated if not _exact(m) and m.verdict == "inconclusive"]
    exact_judged = [m for m in gated if _exact(m) and m.verdict != "inconclusive"]
    reasons = [f"invalid: {r}" for r in facts.invalid]
    warnings = []
    if facts.mismatches and facts.allow_mismatch:
        warnings.append("compared despite different environments (--allow-mismatch): "
                        + "; ".join(facts.mismatches))
    elif facts.mismatches:
        reasons += [f"environment differs: {m}" for m in facts.mismatches]
    if facts.overload:
        reasons.append(f"regression: the candidate could not sustain the rate: {facts.overload}")
    if facts.overload_unsure:
        reasons.append(f"inconclusive: the candidate could not sustain the rate "
                       f"{facts.overload_unsure}")
    reasons += [f"regression: {_describe(m)}" for m in regressions]
    reasons += [f"inconclusive: {_describe(m)}" for m in exact_open + timing_open]
    reasons += [f"inconclusive: {key} was measured on one side only" for key in facts.missing]
    reasons += [f"not gated, reported only: {_describe(m)}"
                for m in metrics if not m.gate and m.verdict == "regression"]
    # timing that is open passes only beside exact gates that all decided, in a same-agent session
    timing_blocks = bool(timing_open) and (not facts.design.confirmed or not exact_judged)
    unsure = exact_open + (timing_open if timing_blocks else [])
    if unsure or facts.missing:
        names = [m.key for m in unsure] + facts.missing
        warnings.append(
            f"WARNING: {len(names)} gated metric(s) inconclusive ({', '.join(names)}): this "
            f"comparison could not tell whether they changed. The build passes unless "
            f"--fail-on-inconclusive is set.")
    overall: Overall
    if facts.invalid:
        overall = "invalid"
    elif facts.mismatches and not facts.allow_mismatch:
        overall = "refused"
    elif facts.overload or regressions:
        overall = "regression"
    elif facts.overload_unsure:
        overall = "inconclusive"
    elif not metrics:
        overall = "invalid"
        reasons.append("invalid: no metric was measured on both sides")
    elif unsure or facts.missing or not gated:
        overall = "inconclusive"
        if not gated:
            reasons.append("inconclusive: no gated metric was measured on both sides")
    else:
        overall = "pass"
    return overall, reasons, warnings


def _resolution(metrics: list[MetricComparison]) -> str:
    """"; timing resolution +-3.5% (cpu_per_request), +-216% (latency_mean)": every gated timing
    metric's smallest detectable change, best first."""
    timing = sorted((m for m in metrics if m.gate and m.kind == "timing"),
                    key=lambda m: m.detectable if m.detectable is not None else math.inf)
    if not timing:
        return ""
    return "; timing resolution " + ", ".join(_resolution_of(m) for m in timing[:4])


def _resolution_of(m: MetricComparison) -> str:
    """A metric's smallest detectable change; at an early look, where the exact test cannot yet
    reach its level, a metric found unchanged is resolved as far as its interval reaches."""
    if m.detectable is not None and math.isfinite(m.detectable):
        return f"+-{m.detectable:.1%} ({m.key})"
    if m.verdict == "unchanged" and m.ci_low is not None and m.ci_high is not None:
        return f"within +-{max(abs(m.ci_low), abs(m.ci_high)):.1%} ({m.key}, its interval)"
    return f"none yet ({m.key})"


def _headline(overall: Overall, metrics: list[MetricComparison], facts: _Facts) -> str:
    """One sentence: what happened and why the build passed or failed."""
    gated = [m for m in metrics if m.gate]
    if overall == "invalid":
        first = facts.invalid[0] if facts.invalid else "no metric was measured on both sides"
        more = f" (and {len(facts.invalid) - 1} more)" if len(facts.invalid) > 1 else ""
        return f"Error, no verdict: the measurements cannot be trusted: {first}{more}."
    if overall == "refused":
        names = [m.split(":", 1)[0] for m in facts.mismatches]
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
    if overall == "regression" and facts.overload:
        return f"Failed: the candidate could not sustain the rate: {facts.overload}."
    if overall == "regression":
        worst = max((m for m in gated if m.verdict == "regression"),
                    key=lambda m: abs(m.change) if m.change is not None else math.inf)
        count = sum(m.verdict == "regression" for m in gated)
        more = f", and {count - 1} more gated metric(s) regressed" if count > 1 else ""
        return (f"Failed: {worst.key} got worse by {_fmt(worst.change)} "
                f"({worst.evidence.split(',')[0]}), beyond its {_pct(worst.min_change)} "
                f"minimum{more}.")
    if overall == "inconclusive" and facts.overload_unsure:
        return (f"Inconclusive: the candidate could not sustain the rate "
                f"{facts.overload_unsure}.")
    if overall == "inconclusive":
        unsure = [m for m in gated if m.verdict == "inconclusive"]
        names = [m.key for m in unsure if _exact(m) or not facts.design.confirmed
                 or not any(_exact(g) and g.verdict != "inconclusive" for g in gated)]
        names += facts.missing
        if not names:
            return "Inconclusive: no gated metric was measured on both sides."
        needed = max((m.rounds_needed or 0) for m in unsure) if unsure else 0
        settle = f"; about {needed} rounds per side would settle it" if needed else ""
        return (f"Inconclusive: no gated metric got worse, but {len(names)} could not be judged "
                f"({', '.join(names)}){settle}.")
    improved = sum(m.verdict == "improvement" for m in gated)
    exact = [m for m in gated if _exact(m)]
    if exact:
        return (f"Passed: {len(exact)} exact gate(s) (counters, instructions) unchanged or "
                f"better and no timing regression{_resolution(metrics)}.")
    return (f"Passed: none of {len(gated)} gated metrics got worse by more than their minimum "
            f"({len(gated) - improved} unchanged, {improved} improved).")


def _missing_gated(warnings: list[str], policies: dict[str, Policy]) -> list[str]:
    """Keys of gated metrics that collect_series found on one side only."""
    out = []
    for warning in warnings:
        if "measured only in the" not in warning:
            continue
        key = warning.split(":", 1)[0]
        policy = policies.get(_metric_of(key))
        if policy is not None and policy.gate:
            out.append(key)
    return out


def compare(
    baseline: Results,
    candidate: Results,
    *,
    allow_mismatch: bool = False,
    policies: Mapping[str, Any] | None = None,
    alpha: float = ALPHA,
    seed: int = 0,
    design: Design | None = None,
) -> Comparison:
    """Compare the candidate's results with the baseline's: per-metric verdicts, then overall.

    `policies` overrides gate/min_change per metric name ({"latency_p99": {"gate": True}}) on top
    of the candidate experiment's [metrics] table and the METRICS defaults. `alpha` is the chance
    of any false alarm among the gated metrics; `design` says what this look of a sequential
    session may spend and whether timing was measured on this agent (docs/statistics.md).
    """
    design = design or Design(level=alpha)
    resolved = resolve_policies(candidate, policies)
    limit = _error_limit(baseline, candidate)
    base_fail = failures(baseline, "baseline", max_error_rate=limit)
    cand_fail = failures(candidate, "candidate", max_error_rate=limit)
    invalid = [f"the {side} has no rounds; re-run the experiment"
               for side, r in (("baseline", baseline), ("candidate", candidate))
               if not r.rounds and not r.instructions]
    invalid += list(base_fail.broken + cand_fail.broken)
    overload = judge_overload(base_fail, cand_fail, alpha=alpha)
    invalid += list(overload.invalid)
    # a candidate that could not sustain the rate: its failed rounds are its numbers at that
    # rate, shown beside the baseline's (the verdict is the overload's already)
    measured_base = _overloaded_counted(baseline, base_fail, all_of_them=False)
    measured = _overloaded_counted(candidate, cand_fail, all_of_them=bool(overload.regression))
    series, warnings = collect_series(measured_base, measured)
    if overload.regression or overload.unsure:
        warnings = _one_sided_summary(warnings)
    warnings += list(overload.warnings)
    # what a load driver says about its own measurement (e.g. JMeter's closed loop) is shown
    warnings += [w for w in dict.fromkeys(baseline.warnings + candidate.warnings)
                 if w.startswith("load driver:")]
    pairs = _pairs(baseline, candidate)
    calibrated = any(r.calibration for r in baseline.rounds + candidate.rounds)
    covariates = None if pairs is None or not calibrated else {
        step: covariate.pair_covariates(measured_base, measured, step, pairs)
        for step in {s.step for s in series}}
    metrics = judge_all(series, series_policies(series, resolved), alpha=alpha, seed=seed,
                        design=design, pairs=pairs, covariates=covariates,
                        exposure=(_exposure(measured_base), _exposure(measured)))
    if overload.regression:
        metrics = [_no_overload_improvement(m) for m in metrics]
    facts = _Facts(invalid=invalid, overload=overload.regression, overload_unsure=overload.unsure,
                   # metrics on one side only because overloaded rounds were left out: said there
                   missing=[] if overload.regression or overload.unsure
                   else _missing_gated(warnings, resolved),
                   mismatches=fingerprint_mismatches(baseline.environment, candidate.environment),
                   allow_mismatch=allow_mismatch, design=design)
    overall, reasons, more_warnings = _overall(metrics, facts)
    details = dict(probes.breakdown_details(baseline, candidate))
    if baseline.instructions and candidate.instructions:
        details["functions"] = function_changes(baseline.instructions, candidate.instructions)
        details["python_functions"] = python_function_changes(
            baseline.instructions.get("python"), candidate.instructions.get("python"))
    details["statistics"] = {
        "alpha": alpha, "seed": seed, "look_level": design.level, "look": design.look,
        "planned": design.planned, "timing_confirmed": design.confirmed,
        "paired_pairs": _pairs(baseline, candidate), "max_error_rate": limit,
        "correction": "max-T sign-flip (paired) / Holm (unpaired); Benjamini-Hochberg for "
                      "metrics that do not gate", "gate_fraction": GATE_FRACTION,
        "failures": {"baseline": asdict(base_fail), "candidate": asdict(cand_fail)},
        "overload": asdict(overload),
        "covariate": {m.key: m.adjusted for m in metrics if m.adjusted is not None},
    }
    return Comparison(
        baseline=baseline, candidate=candidate, metrics=tuple(metrics), overall=overall,
        headline=_headline(overall, metrics, facts), reasons=tuple(reasons),
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
