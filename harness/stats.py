"""Pure statistics: descriptive summaries, and the tests and intervals verdicts rest on."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; raises ValueError on an empty sequence."""
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0.0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# ---------------------------------------------------------------------------------------------
# Tests and intervals on round values (one value per round: DESIGN.md section 8 explains why
# per-request samples never feed a p-value).

# Up to this many values per side the rank test uses its exact permutation distribution; above
# it the normal approximation (with tie correction) is accurate to well under 0.001.
EXACT_MAX_PER_SIDE = 20


def median(values: Sequence[float]) -> float:
    """The median (50th percentile, midpoint of the two middle values for an even count)."""
    return percentile(values, 50.0)


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation divided by |mean|: the relative noise of round values.

    0.0 for fewer than two values; infinity when the mean is 0 but the values are not all 0.
    """
    if len(values) < 2:
        return 0.0
    m = mean(values)
    s = stdev(values)
    if m == 0:
        return 0.0 if s == 0 else math.inf
    return s / abs(m)


def relative_change(baseline: float, candidate: float) -> float | None:
    """candidate / baseline - 1; 0.0 when both are 0, None when only the baseline is 0."""
    if baseline == 0:
        return 0.0 if candidate == 0 else None
    return candidate / baseline - 1.0


def split_half_change(values: Sequence[float]) -> float | None:
    """The A/A control: relative change of the median of odd-positioned values over even ones.

    Rounds of the same code, split by execution order (0, 2, 4, ... against 1, 3, 5, ...), show
    how far this session's noise alone moves the median; None with fewer than 4 values. The
    verdicts use it as a threshold: a change must exceed it, and `unchanged` needs it below
    min_change.
    """
    if len(values) < 4:
        return None
    return relative_change(median(values[0::2]), median(values[1::2]))


def min_p_value(n1: int, n2: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney test on n1 + n2 values can give.

    Complete separation of the two samples is the most extreme outcome: p = 2 / C(n1 + n2, n1).
    With k rounds per side, k < 5 can never reach p < 0.01 (k = 5 gives 0.0079).
    """
    if n1 < 1 or n2 < 1:
        return 1.0
    if n1 + n2 > 1000:  # C(n1 + n2, n1) overflows a float; the bound is 0 for practical purposes
        return 0.0
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


@dataclass(frozen=True)
class RankTest:
    """Result of a two-sided Mann-Whitney U test: U of the first sample, p-value, method used."""

    u: float
    p_value: float
    method: str  # "exact" or "normal"


def _midranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..N, tied values sharing the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


@lru_cache(maxsize=256)
def _rank_sum_counts(doubled_ranks: tuple[int, ...], n1: int) -> np.ndarray:
    """How many ways n1 of the pooled values can be drawn to give each (doubled) rank sum.

    A 0/1 knapsack count over the pooled ranks; doubling keeps tied mid-ranks integral, so the
    permutation distribution is exact with or without ties. Counts stay below 2**53 for
    N <= 2 * EXACT_MAX_PER_SIDE, so float64 holds them exactly.
    """
    top = sum(sorted(doubled_ranks, reverse=True)[:n1])
    counts = np.zeros((n1 + 1, top + 1))
    counts[0, 0] = 1.0
    for d in doubled_ranks:
        # numpy copies overlapping operands, so every value is drawn at most once
        counts[1:, d:] += counts[:-1, : top + 1 - d]
    return counts[n1]


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> RankTest:
    """Two-sided Mann-Whitney U (Wilcoxon rank-sum) test that x and y come from one distribution.

    Exact permutation distribution of the rank sum (ties handled by mid-ranks) when both sides
    have at most EXACT_MAX_PER_SIDE values; above that the normal approximation with tie
    correction and continuity correction. Two-sided p = probability of a rank sum at least as far
    from its mean as the one observed. Significance threshold is the caller's alpha (0.01 in the
    harness); note min_p_value(n1, n2) bounds what the exact test can reach.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney needs at least one value on each side")
    ranks = _midranks(list(x) + list(y))
    u = math.fsum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    if n1 <= EXACT_MAX_PER_SIDE and n2 <= EXACT_MAX_PER_SIDE:
        doubled = tuple(int(round(2 * r)) for r in ranks)
        counts = _rank_sum_counts(tuple(sorted(doubled)), n1)
        centre = n1 * (n1 + n2 + 1)  # doubled expected rank sum
        observed = abs(sum(doubled[:n1]) - centre)
        sums = np.arange(len(counts))
        extreme = np.abs(sums - centre) >= observed
        p = float(counts[extreme].sum() / counts.sum())
        return RankTest(u=u, p_value=min(1.0, p), method="exact")
    n = n1 + n2
    ties = Counter(ranks).values()
    tie_term = math.fsum(t**3 - t for t in ties) / (n * (n - 1))
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:
        return RankTest(u=u, p_value=1.0, method="normal")
    z = max(0.0, abs(u - n1 * n2 / 2.0) - 0.5) / math.sqrt(variance)
    return RankTest(u=u, p_value=min(1.0, math.erfc(z / math.sqrt(2.0))), method="normal")


@lru_cache(maxsize=64)
def _resampled_median_positions(n: int, resamples: int, seed: int, stream: int) -> tuple:
    """Positions, in the sorted sample, of the two middle values of each bootstrap resample.

    Resampling indices into a sorted sample and sorting them gives the resample's sorted values,
    so the median needs only these two positions: computed once per (n, resamples, seed) and
    shared by every metric of a comparison (common random numbers), which keeps it cheap.
    """
    rng = np.random.default_rng([seed, stream])
    ordered = np.sort(rng.integers(0, n, size=(resamples, n)), axis=1)
    return ordered[:, (n - 1) // 2], ordered[:, n // 2]


def _bootstrap_medians(values: Sequence[float], resamples: int, seed: int, stream: int):
    ordered = np.sort(np.asarray(values, dtype=float))
    low, high = _resampled_median_positions(len(ordered), resamples, seed, stream)
    return (ordered[low] + ordered[high]) / 2.0


def _quantiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Linear-interpolation quantiles (as percentile() does) of an unsorted array."""
    ordered = np.sort(values)
    out = []
    for q in qs:
        pos = (len(ordered) - 1) * q
        low = math.floor(pos)
        high = min(low + 1, len(ordered) - 1)
        out.append(float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low)))
    return out


def bootstrap_ratio_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    level: float = 0.99,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the relative change median(candidate)/median(baseline) - 1.

    Each side is resampled with replacement, independently, `resamples` times from a numpy
    generator seeded with `seed` (same inputs and seed, same interval). `level` is the coverage
    (0.99 matches alpha = 0.01). None when every resampled baseline median is 0.
    """
    if len(baseline) == 0 or len(candidate) == 0:
        raise ValueError("bootstrap_ratio_ci needs at least one value on each side")
    mb = _bootstrap_medians(baseline, resamples, seed, 0)
    mc = _bootstrap_medians(candidate, resamples, seed, 1)
    usable = mb != 0
    if not usable.any():
        return None
    ratios = mc[usable] / mb[usable] - 1.0
    tail = (1.0 - level) / 2.0
    low, high = _quantiles(ratios, (tail, 1.0 - tail))
    return low, high


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error rate (any false alarm) at alpha.

    The i-th smallest p (0-based) is multiplied by (m - i), made monotone, capped at 1; a metric
    is significant when its adjusted p < alpha. Returned in the input order.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjustment: controls the false discovery rate at alpha.

    The i-th smallest p (1-based) is multiplied by m / i, made monotone from the largest down,
    capped at 1; adjusted p < alpha means significant. Returned in the input order.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, i in enumerate(order):
        rank = m - position
        running = min(running, min(1.0, p_values[i] * m / rank))
        adjusted[i] = running
    return adjusted


def _t_quantile(q: float, df: int) -> float:
    """Student-t quantile from the normal one by the Cornish-Fisher expansion in 1/df.

    Within about 1% of the exact value for df >= 6 and the tail probabilities used here; slightly
    low for df < 6, where min_p_value already rules the exact test out at alpha = 0.01.
    """
    z = NormalDist().inv_cdf(q)
    if df <= 0:
        return math.inf
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


# Asymptotic relative efficiency of the rank test against the t-test for normal data is 3/pi:
# it needs pi/3 times as many rounds, i.e. sqrt(pi/3) times the detectable shift.
_RANK_TEST_PENALTY = math.sqrt(math.pi / 3.0)


def detectable_change(
    cv: float, n1: int, n2: int, *, alpha: float = 0.01, power: float = 0.8
) -> float:
    """Smallest relative change a two-sided Mann-Whitney test at `alpha` finds with `power`.

    From the round-to-round coefficient of variation `cv`: (t[1-alpha/2] + t[power]) * cv *
    sqrt(1/n1 + 1/n2), scaled by sqrt(pi/3) for the rank test's efficiency. Infinite when the exact
    test cannot reach alpha at all (min_p_value(n1, n2) >= alpha, e.g. fewer than 5 rounds per
    side at alpha 0.01). Pass alpha already divided by the number of metrics compared when a
    multiple-comparison correction applies.
    """
    if n1 < 2 or n2 < 2 or min_p_value(n1, n2) >= alpha or math.isinf(cv):
        return math.inf
    df = n1 + n2 - 2
    spread = (_t_quantile(1.0 - alpha / 2.0, df) + _t_quantile(power, df)) * cv
    return spread * math.sqrt(1.0 / n1 + 1.0 / n2) * _RANK_TEST_PENALTY


def rounds_needed(
    cv: float, change: float, *, alpha: float = 0.01, power: float = 0.8, max_rounds: int = 1000
) -> int | None:
    """Rounds per side for detectable_change(cv, k, k, alpha, power) to be at most `change`.

    Uses the same two-sided Mann-Whitney test at `alpha` as detectable_change; at least the k where
    min_p_value(k, k) < alpha. None when `change` <= 0 or more than `max_rounds` would be needed.
    """
    if change <= 0 or math.isinf(cv):
        return None
    low, high = 2, max_rounds
    if detectable_change(cv, high, high, alpha=alpha, power=power) > change:
        return None
    while low < high:  # detectable_change falls monotonically with k
        mid = (low + high) // 2
        if detectable_change(cv, mid, mid, alpha=alpha, power=power) <= change:
            high = mid
        else:
            low = mid + 1
    return low
