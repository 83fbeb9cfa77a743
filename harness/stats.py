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


# ---------------------------------------------------------------------------------------------
# Paired evidence: interleaved sessions give one log ratio per pair of rounds (DESIGN.md 8: both
# rounds of a pair share much of the machine's noise). Tests are one-sided ("did it get worse?").

# Up to this many pairs the sign-flip test enumerates all 2**n sign patterns; above it draws
# this many seeded random patterns (a Monte Carlo p-value, never below 1 / (draws + 1)).
EXACT_MAX_PAIRS = 14
SIGN_FLIP_DRAWS = 20000


def _signed_ranks(d: np.ndarray) -> np.ndarray:
    """sign(d) * midrank(|d|) among the nonzero values; zero differences score 0."""
    out = np.zeros(len(d))
    nonzero = np.flatnonzero(d != 0)
    if len(nonzero):
        ranks = np.asarray(_midranks([abs(float(v)) for v in d[nonzero]]))
        out[nonzero] = np.sign(d[nonzero]) * ranks
    return out


@lru_cache(maxsize=64)
def _flips(n: int, seed: int) -> np.ndarray:
    """Sign patterns of n pairs: every one (n <= EXACT_MAX_PAIRS) or seeded random ones, the
    observed (all +1) first."""
    if n <= EXACT_MAX_PAIRS:
        codes = np.arange(2**n)[:, None] >> np.arange(n)[None, :]
        return 1.0 - 2.0 * (codes & 1)
    rng = np.random.default_rng([seed, n, 7])
    drawn = rng.choice([-1.0, 1.0], size=(SIGN_FLIP_DRAWS, n))
    drawn[0] = 1.0
    return drawn


@dataclass(frozen=True)
class SignFlipTest:
    """One-sided sign-flip (randomisation) test of signed-rank statistics over a family.

    `p_each[j]`: P(statistic j >= observed j) under random signs of whole pairs; `p_family[j]`:
    the same for the family's maximum (max-T, Westfall-Young single step), which controls the
    chance of any false alarm in the family whatever the metrics' correlation. `level_each` is
    the per-metric level that the family's max-T threshold at `level` amounts to (for power).
    """

    p_each: tuple[float, ...]
    p_family: tuple[float, ...]
    patterns: int
    method: str  # "exact" or "monte-carlo"
    level: float | None = None
    level_each: float | None = None


def sign_flip_test(diffs: Sequence[Sequence[float]], *, level: float | None = None,
                   seed: int = 0) -> SignFlipTest:
    """One-sided test that each row of `diffs` (per-pair differences, one row per metric, all
    with the same n pairs) is shifted above 0, and the max-T adjustment over the rows.

    Under "no change" both orders of a pair are equally likely (perf randomises them), so every
    row's signs may be flipped together, pair by pair: this keeps the correlation between the
    metrics of one pair. The statistic is the Wilcoxon signed-rank sum scaled by its standard
    deviation: an outlier pair counts as one rank, not by its size.
    """
    rows = np.atleast_2d(np.asarray(diffs, dtype=float))
    m, n = rows.shape
    if n == 0:
        return SignFlipTest((1.0,) * m, (1.0,) * m, 0, "exact", level, level)
    scores = np.stack([_signed_ranks(r) for r in rows])  # m x n
    norms = np.sqrt((scores**2).sum(axis=1))
    norms[norms == 0] = 1.0
    flips = _flips(n, seed)
    null = flips @ (scores / norms[:, None]).T  # patterns x m
    observed = null[0]
    tol = 1e-9
    biggest = null.max(axis=1)
    exact = n <= EXACT_MAX_PAIRS
    count = (lambda hits: float(hits.mean())) if exact else \
        (lambda hits: float((hits.sum() + 1) / (len(hits) + 1)))
    p_each = tuple(count(null[:, j] >= observed[j] - tol) for j in range(m))
    p_family = tuple(count(biggest >= observed[j] - tol) for j in range(m))
    level_each = None
    if level is not None:
        # the family's critical value: the smallest c with P(max >= c) <= level; the per-metric
        # level it amounts to is what the power of each metric's own test is computed at
        level_each = 0.0
        ordered = np.sort(biggest)
        values = np.unique(biggest)
        above = len(ordered) - np.searchsorted(ordered, values - tol, side="left")
        tails = above / len(ordered) if exact else (above + 1) / (len(ordered) + 1)
        allowed = values[tails <= level + 1e-12]
        if len(allowed):
            critical = allowed[0]
            level_each = float(np.mean([count(null[:, j] >= critical - tol) for j in range(m)]))
    return SignFlipTest(p_each, p_family, len(flips), "exact" if exact else "monte-carlo",
                        level, level_each)


@lru_cache(maxsize=256)
def signed_rank_null(n: int) -> np.ndarray:
    """P(W+ = w) for w = 0..n(n+1)/2: the exact null distribution of the signed-rank sum."""
    top = n * (n + 1) // 2
    probs = np.zeros(top + 1)
    probs[0] = 1.0
    for r in range(1, n + 1):
        shifted = np.zeros_like(probs)
        shifted[r:] = probs[: top + 1 - r]
        probs = 0.5 * (probs + shifted)
    return probs


def _lower_order(null_probs: np.ndarray, alpha: float) -> int:
    """k: the largest count with P(statistic <= k - 1) <= alpha (0 when none is)."""
    cdf = np.cumsum(null_probs)
    return int(np.searchsorted(cdf, alpha + 1e-12, side="right"))


@dataclass(frozen=True)
class ShiftInterval:
    """Hodges-Lehmann estimate of a shift with one-sided bounds, each at level 1 - alpha.

    A bound is -inf/+inf when so few values cannot reach that level (`reached` False); with
    `clip` the most extreme value stands in for it.
    """

    estimate: float
    low: float
    high: float
    alpha: float
    reached: bool


def paired_shift_interval(d: Sequence[float], *, alpha: float,
                          clip: bool = False) -> ShiftInterval:
    """Hodges-Lehmann estimate (median of the Walsh averages) of the per-pair shift, with the
    distribution-free bounds of the signed-rank test (order statistics of the Walsh averages)."""
    values = np.asarray(d, dtype=float)
    n = len(values)
    if n == 0:
        raise ValueError("paired_shift_interval needs at least one pair")
    i, j = np.triu_indices(n)
    walsh = np.sort((values[i] + values[j]) / 2.0)
    k = _lower_order(signed_rank_null(n), alpha) if n <= 60 else _normal_order(
        n * (n + 1) / 4.0, n * (n + 1) * (2 * n + 1) / 24.0, alpha)
    return _interval(walsh, k, alpha, clip)


def _normal_order(mean_: float, variance: float, alpha: float) -> int:
    return max(0, int(math.floor(mean_ - NormalDist().inv_cdf(1 - alpha) * math.sqrt(variance)
                                 + 0.5)))


def _interval(ordered: np.ndarray, k: int, alpha: float, clip: bool) -> ShiftInterval:
    estimate = float(np.median(ordered))
    if k >= 1:
        return ShiftInterval(estimate, float(ordered[k - 1]), float(ordered[len(ordered) - k]),
                             alpha, True)
    if clip:
        return ShiftInterval(estimate, float(ordered[0]), float(ordered[-1]), alpha, False)
    return ShiftInterval(estimate, -math.inf, math.inf, alpha, False)


def shift_interval(baseline: Sequence[float], candidate: Sequence[float], *, alpha: float,
                   clip: bool = False) -> ShiftInterval:
    """Hodges-Lehmann two-sample shift (median of all candidate - baseline differences) with the
    Mann-Whitney order-statistic bounds, each one-sided at level 1 - alpha."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if len(b) == 0 or len(c) == 0:
        raise ValueError("shift_interval needs at least one value on each side")
    ordered = np.sort((c[:, None] - b[None, :]).ravel())
    n1, n2 = len(b), len(c)
    if n1 <= EXACT_MAX_PER_SIDE and n2 <= EXACT_MAX_PER_SIDE:
        counts = _rank_sum_counts(tuple(range(2, 2 * (n1 + n2) + 1, 2)), n2)
        # doubled rank sums of the candidate; U = (sum - n2 (n2 + 1)) / 2 in steps of 2
        probs = counts[n2 * (n2 + 1):: 2] / counts.sum()
        k = _lower_order(probs, alpha)
    else:
        k = _normal_order(n1 * n2 / 2.0, n1 * n2 * (n1 + n2 + 1) / 12.0, alpha)
    return _interval(ordered, k, alpha, clip)


def mann_whitney_one_sided(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value that x tends to be larger than y (exact up to EXACT_MAX_PER_SIDE)."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_one_sided needs at least one value on each side")
    ranks = _midranks(list(x) + list(y))
    if n1 <= EXACT_MAX_PER_SIDE and n2 <= EXACT_MAX_PER_SIDE:
        doubled = tuple(int(round(2 * r)) for r in ranks)
        counts = _rank_sum_counts(tuple(sorted(doubled)), n1)
        observed = sum(doubled[:n1])
        return float(counts[observed:].sum() / counts.sum())
    n = n1 + n2
    u = math.fsum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    ties = Counter(ranks).values()
    variance = n1 * n2 / 12.0 * ((n + 1) - math.fsum(t**3 - t for t in ties) / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return 1.0 - NormalDist().cdf(z)


def binomial_excess_p(errors_a: int, requests_a: int, errors_b: int, requests_b: int) -> float:
    """Exact one-sided p-value that side b fails more often than side a, given the requests.

    Conditional on the total number of failures, side b's share is binomial with probability
    requests_b / (requests_a + requests_b) when both fail at the same rate.
    """
    total = errors_a + errors_b
    if total == 0 or requests_a + requests_b == 0 or errors_b == 0:
        return 1.0
    share = requests_b / (requests_a + requests_b)
    if share >= 1.0:  # side a sent nothing: every failure is b's by construction
        return 1.0
    if share <= 0.0:  # failures counted where no request was: b fails more than any rate gives
        return 0.0
    # in logs: with thousands of failures the coefficients overflow a float
    logs = [math.lgamma(total + 1) - math.lgamma(k + 1) - math.lgamma(total - k + 1)
            + k * math.log(share) + (total - k) * math.log1p(-share)
            for k in range(errors_b, total + 1)]
    top = max(logs)
    return float(min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs)))


# ---------------------------------------------------------------------------------------------
# Sequential looks: perf adds pairs while a verdict is open, so it looks at the data several
# times. Alpha is spent across the planned looks (Lan-DeMets, O'Brien-Fleming shape: almost
# nothing early, nearly all of it at the last look).


def obrien_fleming_spent(fraction: float, alpha: float) -> float:
    """Alpha spent up to information fraction `fraction` (0..1) by the O'Brien-Fleming-type
    spending function 2 - 2 Phi(z[1 - alpha/2] / sqrt(t)); all of alpha at t >= 1."""
    if fraction <= 0:
        return 0.0
    if fraction >= 1:
        return alpha
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return 2.0 - 2.0 * NormalDist().cdf(z / math.sqrt(fraction))


def _signed_rank_paths(looks: tuple[int, ...], paths: int, seed: int) -> np.ndarray:
    """The signed-rank sum W+ of `paths` seeded no-change sessions at each look (paths x looks).

    Under no change the signs of the pairs are fair coins independent of the sizes |d|, and the
    sizes of exchangeable pairs come in a uniformly random order, so any continuous size
    distribution gives the same W+ at every look: uniform sizes stand in for the data's. Adding
    pair i raises the rank of every earlier pair that is larger, so W+ is updated in place.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.random((paths, looks[-1]), dtype=np.float32)
    positive = rng.random((paths, looks[-1])) < 0.5
    w = np.zeros(paths, dtype=np.int64)
    out = np.empty((paths, len(looks)), dtype=np.int64)
    column = {n: k for k, n in enumerate(looks)}
    for i in range(looks[-1]):
        larger = sizes[:, :i] > sizes[:, i : i + 1]
        w += (larger & positive[:, :i]).sum(axis=1)
        w += np.where(positive[:, i], i + 1 - larger.sum(axis=1), 0)
        if i + 1 in column:
            out[:, column[i + 1]] = w
    return out


@lru_cache(maxsize=128)
def sequential_levels(looks: tuple[int, ...], alpha: float, *, paths: int = 200_000,
                      seed: int = 20261202) -> tuple[float, ...]:
    """Nominal one-sided levels, one per look (pairs at each look), that together spend `alpha`.

    Calibrated on the exact test itself: the joint distribution of the signed-rank statistic over
    the looks of a no-change session does not depend on the data (see _signed_rank_paths), so a
    seeded simulation of it gives each look the largest p-value the exact test can produce
    whose cumulative false-alarm rate stays within the O'Brien-Fleming-type spending up to that
    look (by two standard errors of the simulation); what the discreteness of the exact test
    leaves unspent carries to the next look. When no p-value the look can produce fits, its
    level is below the smallest one (no rejection possible). A test at look k rejects when its
    p-value <= level k. For n > EXACT_MAX_PAIRS the sign-flip test's Monte Carlo p-value stands
    in for the exact one (within its own noise).
    """
    if len(looks) <= 1:
        return (alpha,) * len(looks)
    if any(b <= a for a, b in zip(looks, looks[1:], strict=False)) or looks[0] < 1:
        raise ValueError(f"looks must be increasing pair counts, got {looks}")
    statistic = _signed_rank_paths(looks, paths, seed)
    alive = np.ones(paths, dtype=bool)
    crossed = 0
    levels = []
    for k, n in enumerate(looks):
        tail = np.cumsum(signed_rank_null(n)[::-1])[::-1]  # P(W+ >= w), exact
        p = tail[statistic[:, k]]
        allowed = obrien_fleming_spent(n / looks[-1], alpha) * paths
        atoms = np.unique(tail)
        hits = crossed + np.searchsorted(np.sort(p[alive]), atoms, side="right")
        # within the spending even at the upper end of the simulation's own noise (2 SE)
        fits = np.flatnonzero(hits + 2.0 * np.sqrt(hits * (1.0 - hits / paths)) <= allowed)
        if len(fits):
            level = float(atoms[fits[-1]])
        else:
            left = max(allowed - crossed, 0.0) / paths
            level = float(min(left, np.nextafter(atoms[0], 0.0)))
        stopped = alive & (p <= level)
        crossed += int(stopped.sum())
        alive &= ~stopped
        levels.append(level)
    return tuple(levels)


# ---------------------------------------------------------------------------------------------
# Power of the test actually used: a seeded simulation of the signed-rank sign-flip test.

POWER_SIMULATIONS = 3000


EXACT_POWER_MAX_PAIRS = 30  # above: the large-sample formula, within a few % of simulation


@lru_cache(maxsize=4096)
def signed_rank_detectable(n: int, level: float, power: float = 0.8) -> float:
    """Smallest shift, in units of the per-pair standard deviation, that the one-sided signed-rank
    test on n pairs at `level` detects with probability `power` (normal per-pair noise).

    Exact null distribution and a seeded simulation of the alternative up to
    EXACT_POWER_MAX_PAIRS pairs; above, the large-sample formula with the test's efficiency 3/pi.
    Infinite when n pairs cannot reach `level` at all (2**-n > level).
    """
    if n < 1 or level <= 0 or 0.5**n > level:
        return math.inf
    z = NormalDist().inv_cdf(1 - level) + NormalDist().inv_cdf(power)
    if n > EXACT_POWER_MAX_PAIRS:
        return z / math.sqrt(n * 3.0 / math.pi)
    probs = signed_rank_null(n)
    tail = np.cumsum(probs[::-1])[::-1]  # P(W+ >= w)
    critical = int(np.argmax(tail <= level + 1e-12))
    rng = np.random.default_rng([n, 11])
    noise = rng.normal(0.0, 1.0, (POWER_SIMULATIONS, n))
    rows = np.arange(POWER_SIMULATIONS)[:, None]
    ranks = np.empty((POWER_SIMULATIONS, n))

    def found(shift: float) -> float:
        d = noise + shift
        ranks[rows, np.argsort(np.abs(d), axis=1)] = np.arange(1, n + 1)
        return float(((ranks * (d > 0)).sum(axis=1) >= critical).mean())

    return _bisect_power(found, z / math.sqrt(n * 3.0 / math.pi), power)


def pairs_needed(sd: float, change: float, *, level: float, power: float = 0.8,
                 max_pairs: int = 1000) -> int | None:
    """Pairs for the signed-rank test at `level` to find a log-ratio shift `change` with `power`
    when pairs vary with standard deviation `sd`; None beyond max_pairs or for change <= 0."""
    if change <= 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return max(1, math.ceil(math.log2(1 / level)))
    if signed_rank_detectable(max_pairs, level, power) * sd > change:
        return None
    low, high = 1, max_pairs
    while low < high:
        mid = (low + high) // 2
        if signed_rank_detectable(mid, level, power) * sd <= change:
            high = mid
        else:
            low = mid + 1
    return low


def median_unbiased_sd(sd: float, df: int) -> float:
    """A sample standard deviation scaled so that, for normal values, half the sessions read it
    above the true one and half below (sd * sqrt(df / median of chi-squared(df)), the median by
    Wilson-Hilferty). Small samples read the spread low more often than high: unscaled, the
    typical session would promise a smaller detectable change than its test has power for."""
    if df < 1 or not math.isfinite(sd):
        return math.inf if df < 1 else sd
    chi_median = df * (1.0 - 2.0 / (9.0 * df)) ** 3
    return sd * math.sqrt(df / chi_median)


def _bisect_power(found, guess: float, power: float) -> float:
    """Smallest shift with found(shift) >= power (found rises with the shift), to 2**-12 of it."""
    low, high = 0.0, guess
    while found(high) < power:
        low, high = high, high * 1.5
        if high > 1e3:
            return math.inf
    for _ in range(12):
        mid = (low + high) / 2
        if found(mid) >= power:
            high = mid
        else:
            low = mid
    return high


@lru_cache(maxsize=4096)
def rank_sum_detectable(n1: int, n2: int, level: float, power: float = 0.8) -> float:
    """Smallest shift, in units of the per-round standard deviation (of log values), that the
    one-sided exact Mann-Whitney test of n2 candidate rounds against n1 baseline rounds at `level`
    detects with probability `power` (normal round noise): the unpaired counterpart of
    signed_rank_detectable, from the test actually used (exact null, seeded simulation of the
    alternative) up to EXACT_MAX_PER_SIDE rounds per side; above, the large-sample formula with
    the test's efficiency 3/pi. Infinite when the rounds cannot reach `level` at all.
    """
    if n1 < 1 or n2 < 1 or level <= 0 or min_p_value(n1, n2) / 2.0 > level:
        return math.inf
    z = NormalDist().inv_cdf(1 - level) + NormalDist().inv_cdf(power)
    effective = n1 * n2 / (n1 + n2) * 3.0 / math.pi
    if n1 > EXACT_MAX_PER_SIDE or n2 > EXACT_MAX_PER_SIDE:
        return z / math.sqrt(effective)
    counts = _rank_sum_counts(tuple(range(2, 2 * (n1 + n2) + 1, 2)), n2)
    tail = np.cumsum(counts[::-1])[::-1] / counts.sum()  # P(doubled rank sum >= s)
    critical = int(np.argmax(tail <= level + 1e-12))
    rng = np.random.default_rng([n1, n2, 13])
    noise = rng.normal(0.0, 1.0, (POWER_SIMULATIONS, n1 + n2))
    rows = np.arange(POWER_SIMULATIONS)[:, None]
    ranks = np.empty((POWER_SIMULATIONS, n1 + n2))
    shifted = np.zeros(n1 + n2)

    def found(shift: float) -> float:
        shifted[n1:] = shift
        values = noise + shifted
        ranks[rows, np.argsort(values, axis=1)] = np.arange(2, 2 * (n1 + n2) + 1, 2)
        return float((ranks[:, n1:].sum(axis=1) >= critical).mean())

    return _bisect_power(found, z / math.sqrt(effective), power)


def rounds_per_side_needed(sd: float, change: float, *, level: float, power: float = 0.8,
                           max_rounds: int = 1000) -> int | None:
    """Rounds per side for the one-sided exact Mann-Whitney test at `level` to find a shift of
    the log values by `change` with `power` when rounds vary with standard deviation `sd` (of
    their logs); None beyond max_rounds or for change <= 0."""
    if change <= 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        k = 1
        while 1.0 / math.comb(2 * k, k) > level:
            k += 1
        return k
    if rank_sum_detectable(max_rounds, max_rounds, level, power) * sd > change:
        return None
    low, high = 1, max_rounds
    while low < high:
        mid = (low + high) // 2
        if rank_sum_detectable(mid, mid, level, power) * sd <= change:
            high = mid
        else:
            low = mid + 1
    return low


# ---------------------------------------------------------------------------------------------
# Description of the metrics that do not gate: a t interval on log ratios, whose p-value can go
# as low as a large change deserves (the exact rank tests cannot go below 2**-n with n pairs).


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x)
                 + b * math.log(1 - x))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-12:
            break
    return math.exp(log_front) * fraction / a


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with df degrees of freedom."""
    if df <= 0 or math.isnan(t):
        return 1.0
    if math.isinf(t):
        return 0.0
    return _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True)
class MeanInterval:
    """Mean difference of log values with a two-sided t interval and p-value."""

    estimate: float
    low: float
    high: float
    p_value: float


def log_mean_interval(baseline: Sequence[float], candidate: Sequence[float], *,
                      paired: bool, level: float = 0.95) -> MeanInterval | None:
    """Mean log ratio candidate/baseline: paired t on per-pair log ratios, else Welch's t on the
    logs. None when a value is not positive or there are too few values for a spread."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if (b <= 0).any() or (c <= 0).any():
        return None
    if paired:
        d = np.log(c) - np.log(b)
        if len(d) < 2:
            return None
        estimate, se, df = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d)), len(d) - 1
    else:
        if len(b) < 2 or len(c) < 2:
            return None
        lb, lc = np.log(b), np.log(c)
        vb, vc = lb.var(ddof=1) / len(lb), lc.var(ddof=1) / len(lc)
        estimate, se = float(lc.mean() - lb.mean()), math.sqrt(vb + vc)
        denominator = vb**2 / (len(lb) - 1) + vc**2 / (len(lc) - 1)
        df = (vb + vc) ** 2 / denominator if denominator > 0 else len(lb) + len(lc) - 2
    if se == 0:
        p = 1.0 if estimate == 0 else 0.0
        return MeanInterval(estimate, estimate, estimate, p)
    half = _t_quantile(0.5 + level / 2.0, max(1, int(df))) * se
    return MeanInterval(estimate, estimate - half, estimate + half,
                        t_two_sided_p(estimate / se, df))
