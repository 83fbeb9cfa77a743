"""Pure statistics: the rank test, bootstrap interval, corrections, detectable change, rounds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness import stats


def brute_force_p(x, y):
    """Two-sided exact p by enumerating every split of the pooled mid-ranks (small n only)."""
    ranks = stats._midranks(list(x) + list(y))
    n1, n = len(x), len(x) + len(y)
    centre = n1 * (n + 1) / 2
    observed = abs(sum(ranks[:n1]) - centre)
    splits = list(itertools.combinations(range(n), n1))
    extreme = sum(abs(sum(ranks[i] for i in s) - centre) >= observed - 1e-9 for s in splits)
    return extreme / len(splits)


def test_descriptive_functions_keep_their_behaviour():
    assert stats.mean([1.0, 2.0, 3.0]) == 2.0
    assert stats.stdev([2.0, 4.0]) == pytest.approx(math.sqrt(2.0))
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.median([5.0, 1.0, 3.0]) == 3.0


def test_complete_separation_of_five_rounds_reaches_the_exact_floor():
    result = stats.mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert result.method == "exact"
    assert result.p_value == pytest.approx(2 / math.comb(10, 5))
    assert result.p_value < 0.01


def test_four_rounds_per_side_can_never_reach_one_percent():
    assert stats.min_p_value(4, 4) == pytest.approx(2 / 70)
    assert stats.min_p_value(4, 4) > 0.01
    assert stats.min_p_value(5, 5) < 0.01
    best = stats.mann_whitney([1, 2, 3, 4], [5, 6, 7, 8]).p_value
    assert best == pytest.approx(stats.min_p_value(4, 4))


@pytest.mark.parametrize("n1,n2,rounding", [(3, 7, 0), (6, 6, 0), (5, 4, 1), (4, 6, None)])
def test_exact_p_matches_enumeration_with_and_without_ties(n1, n2, rounding):
    rng = np.random.default_rng(n1 * 10 + n2)
    x, y = rng.normal(size=n1), rng.normal(0.7, size=n2)
    if rounding is not None:  # force ties
        x, y = np.round(x, rounding), np.round(y, rounding)
    result = stats.mann_whitney(list(x), list(y))
    assert result.p_value == pytest.approx(brute_force_p(list(x), list(y)))


def test_identical_samples_are_not_different_and_the_test_is_symmetric():
    assert stats.mann_whitney([1.0] * 6, [1.0] * 6).p_value == 1.0
    x, y = [1.0, 3.0, 2.5, 7.0, 4.0], [2.0, 9.0, 8.0, 6.0, 5.5]
    assert stats.mann_whitney(x, y).p_value == pytest.approx(stats.mann_whitney(y, x).p_value)


def test_normal_approximation_takes_over_above_twenty_and_agrees_with_exact():
    rng = np.random.default_rng(5)
    x, y = list(rng.normal(size=21)), list(rng.normal(0.5, size=21))
    approx = stats.mann_whitney(x, y)
    assert approx.method == "normal"
    exact = stats.mann_whitney(x[:20], y[:20])
    assert exact.method == "exact"
    assert approx.p_value == pytest.approx(exact.p_value, rel=0.5)


def test_agrees_with_reference_values():
    # reference p-values from scipy.stats.mannwhitneyu on the same data (scipy is not a dependency)
    rng = np.random.default_rng(9)
    x, y = np.round(rng.normal(size=30), 1), np.round(rng.normal(0.6, size=25), 1)
    assert stats.mann_whitney(list(x), list(y)).p_value == pytest.approx(0.4312307082636859)
    x, y = rng.normal(size=8), rng.normal(0.6, size=12)
    assert stats.mann_whitney(list(x), list(y)).p_value == pytest.approx(0.13493688973565135)


def test_mann_whitney_refuses_an_empty_side():
    with pytest.raises(ValueError):
        stats.mann_whitney([], [1.0])


def test_bootstrap_interval_is_seeded_and_covers_the_true_ratio():
    rng = np.random.default_rng(2)
    base = list(100 * np.exp(rng.normal(0, 0.05, 10)))
    cand = list(130 * np.exp(rng.normal(0, 0.05, 10)))
    first = stats.bootstrap_ratio_ci(base, cand, seed=3)
    assert first == stats.bootstrap_ratio_ci(base, cand, seed=3)
    low, high = first
    assert low < 0.30 < high
    assert low > 0  # a 30% change with 5% noise is clearly not zero
    narrow = stats.bootstrap_ratio_ci(base, cand, level=0.80, seed=3)
    assert low <= narrow[0] <= narrow[1] <= high


def test_bootstrap_of_an_all_zero_baseline_has_no_ratio():
    assert stats.bootstrap_ratio_ci([0.0, 0.0], [1.0, 2.0]) is None


def test_holm_and_benjamini_hochberg_known_values():
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert stats.holm([]) == [] and stats.benjamini_hochberg([]) == []
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1, monotone


def test_holm_is_never_more_lenient_than_benjamini_hochberg_or_raw():
    rng = np.random.default_rng(4)
    p = list(rng.uniform(0, 0.05, 12))
    for raw, h, bh in zip(p, stats.holm(p), stats.benjamini_hochberg(p), strict=True):
        assert raw <= bh + 1e-12 and bh <= h + 1e-12


def test_detectable_change_is_infinite_below_five_rounds_and_shrinks_with_rounds():
    assert math.isinf(stats.detectable_change(0.10, 4, 4, alpha=0.01))
    five = stats.detectable_change(0.10, 5, 5, alpha=0.01)
    ten = stats.detectable_change(0.10, 10, 10, alpha=0.01)
    assert math.isfinite(five) and ten < five
    assert stats.detectable_change(0.05, 10, 10) == pytest.approx(ten / 2)
    assert stats.detectable_change(0.10, 10, 10, alpha=0.001) > ten  # stricter alpha costs power


def test_detectable_change_matches_the_design_measurements():
    # DESIGN.md 8: with 10 + 10 rounds in a noisy period (CV 9-17%) ~20% is catchable, 5-10% not;
    # in a calm period (CV ~3%) ~5% is.
    assert 0.10 < stats.detectable_change(0.09, 10, 10) < 0.25
    assert stats.detectable_change(0.03, 10, 10) < 0.07


def test_a_shift_of_the_detectable_size_is_mostly_found():
    rng = np.random.default_rng(0)
    shift = stats.detectable_change(0.10, 10, 10, alpha=0.01)
    base = rng.normal(1.0, 0.10, (300, 10))
    cand = rng.normal(1.0 + shift, 0.10, (300, 10))
    found = sum(stats.mann_whitney(list(b), list(c)).p_value < 0.01
                for b, c in zip(base, cand, strict=True))
    assert found / 300 >= 0.7  # nominal power 0.8; the discrete exact test falls a little short


def test_rounds_needed_is_the_smallest_sufficient_count():
    k = stats.rounds_needed(0.10, 0.10, alpha=0.01)
    assert stats.detectable_change(0.10, k, k, alpha=0.01) <= 0.10
    assert stats.detectable_change(0.10, k - 1, k - 1, alpha=0.01) > 0.10
    assert stats.rounds_needed(0.03, 0.10) < k
    assert stats.rounds_needed(0.10, 0.0) is None
    assert stats.rounds_needed(50.0, 0.01) is None  # more than max_rounds


def test_noise_helpers():
    assert stats.coefficient_of_variation([10.0, 10.0]) == 0.0
    assert stats.coefficient_of_variation([9.0, 11.0]) == pytest.approx(math.sqrt(2) / 10)
    assert stats.coefficient_of_variation([1.0]) == 0.0
    assert stats.relative_change(0.0, 0.0) == 0.0
    assert stats.relative_change(0.0, 1.0) is None
    assert stats.relative_change(2.0, 3.0) == pytest.approx(0.5)
    assert stats.split_half_change([1.0, 2.0, 3.0]) is None
    assert stats.split_half_change([1.0, 2.0, 1.0, 2.0]) == pytest.approx(1.0)


def test_every_public_function_names_its_test_or_threshold():
    for name in ("mann_whitney", "bootstrap_ratio_ci", "holm", "benjamini_hochberg",
                 "detectable_change", "rounds_needed", "min_p_value", "split_half_change"):
        doc = getattr(stats, name).__doc__
        assert doc and any(word in doc for word in ("alpha", "0.01", "level", "threshold",
                                                     "p-value", "p =", "p < ")), name


# --- paired, one-sided, sequential (harness perf) ---------------------------------------------


def test_sign_flip_p_values_match_enumeration_and_max_t_is_never_smaller():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, (3, 9))
    d[1] = d[0] + rng.normal(0, 0.05, 9)  # a correlated metric
    test = stats.sign_flip_test(d)
    signs = np.array(list(itertools.product((-1, 1), repeat=9)))
    scores = np.sign(d[0]) * (np.argsort(np.argsort(np.abs(d[0]))) + 1)
    null = signs @ scores
    assert test.p_each[0] == pytest.approx(np.mean(null >= scores.sum() - 1e-9))
    assert test.method == "exact" and test.patterns == 2**9
    assert all(f >= e for f, e in zip(test.p_family, test.p_each, strict=True))
    # correlated metrics cost little: max-T is far below Bonferroni over three
    assert test.p_family[0] < 3 * test.p_each[0]


def test_six_pairs_cannot_reach_one_percent_one_sided_and_an_outlier_is_one_rank():
    assert stats.sign_flip_test([[0.1] * 6]).p_each[0] == pytest.approx(1 / 64)
    assert math.isinf(stats.signed_rank_detectable(6, 0.01))
    # an outlier pair counts by its rank, not its size: 0.13 -> 5.0 (still the largest) changes
    # nothing, where a mean-based flip test would be dominated by it
    small = stats.sign_flip_test([[0.1, 0.12, 0.09, 0.11, 0.1, 0.13, -0.05, 0.1]]).p_each[0]
    huge = stats.sign_flip_test([[0.1, 0.12, 0.09, 0.11, 0.1, 5.0, -0.05, 0.1]]).p_each[0]
    assert small == huge < 0.01


def test_paired_interval_covers_the_true_shift_at_its_level():
    rng = np.random.default_rng(5)
    missed_low = missed_high = 0
    for _ in range(400):
        shift = stats.paired_shift_interval(rng.normal(0.2, 1.0, 10), alpha=0.05)
        missed_low += shift.low > 0.2
        missed_high += shift.high < 0.2
    assert missed_low <= 0.05 * 400 + 8 and missed_high <= 0.05 * 400 + 8
    assert not stats.paired_shift_interval([1.0] * 4, alpha=0.01).reached


def test_two_sample_interval_is_distribution_free_and_clips_for_one_round():
    interval = stats.shift_interval([10.0], [10.2], alpha=0.01, clip=True)
    assert interval.low == interval.high == pytest.approx(0.2) and not interval.reached
    wide = stats.shift_interval(range(6), [v + 3 for v in range(6)], alpha=0.01)
    assert wide.reached and wide.low < 3 < wide.high and wide.estimate == pytest.approx(3)


def test_errors_exact_count_test():
    assert stats.binomial_excess_p(0, 600, 1, 600) == pytest.approx(0.5)
    assert stats.binomial_excess_p(0, 600, 12, 600) == pytest.approx(0.5**12)
    assert stats.binomial_excess_p(0, 0, 0, 0) == 1.0


def test_errors_exact_count_test_holds_for_thousands_of_failures():
    # a collapse in a long run: more failures than a float can hold a binomial coefficient of
    assert stats.binomial_excess_p(500, 3000, 1500, 3000) < 1e-100
    assert stats.binomial_excess_p(1500, 3000, 500, 3000) == pytest.approx(1.0)
    # equal rates: the candidate's excess is a coin flip, and the tail at the middle about half
    assert 0.45 < stats.binomial_excess_p(1000, 3000, 1000, 3000) < 0.55
    assert stats.binomial_excess_p(0, 300, 127, 300) == pytest.approx(0.5**127)


def test_sequential_levels_spend_alpha_mostly_at_the_end():
    levels = stats.sequential_levels(tuple(range(6, 13)), 0.01)
    assert list(levels) == sorted(levels) and levels[-1] < 0.01 < sum(levels)
    assert levels[0] < 0.001
    assert stats.obrien_fleming_spent(1.0, 0.01) == 0.01
    assert stats.sequential_levels((8,), 0.01) == pytest.approx((0.01,), rel=0.05)


def test_sequential_levels_keep_the_exact_test_within_alpha_on_fresh_sessions():
    # sessions the levels were not calibrated on (another seed), judged by the exact one-sided
    # signed-rank p-value at each look: the cumulative false alarms follow the spending function
    looks = tuple(range(6, 16))
    levels = stats.sequential_levels(looks, 0.01)
    statistic = stats._signed_rank_paths(looks, 100_000, seed=1)
    stopped = np.zeros(len(statistic), dtype=bool)
    for k, n in enumerate(looks):
        tail = np.cumsum(stats.signed_rank_null(n)[::-1])[::-1]
        stopped |= tail[statistic[:, k]] <= levels[k]
        assert stopped.mean() <= stats.obrien_fleming_spent(n / looks[-1], 0.01) + 0.0008
    assert 0.008 <= stopped.mean() <= 0.0108  # spent, not wasted (discreteness allowing)
    # a level is a p-value the exact test can produce, or below the smallest one
    tail = np.cumsum(stats.signed_rank_null(12)[::-1])[::-1]
    assert levels[6] in set(tail.tolist())
    assert levels[0] < 0.5**6


def test_signed_rank_paths_match_ranks_computed_afresh():
    statistic = stats._signed_rank_paths((5, 9), 7, seed=4)
    rng = np.random.default_rng(4)
    sizes = rng.random((7, 9), dtype=np.float32)
    positive = rng.random((7, 9)) < 0.5
    for k, n in enumerate((5, 9)):
        ranks = np.argsort(np.argsort(sizes[:, :n], axis=1), axis=1) + 1
        assert (statistic[:, k] == (ranks * positive[:, :n]).sum(axis=1)).all()


def test_the_unpaired_detectable_shift_is_that_of_the_exact_one_sided_test():
    n, level = 8, 0.01
    shift = stats.rank_sum_detectable(n, n, level)
    rng = np.random.default_rng(98)
    found = np.mean([stats.mann_whitney_one_sided(rng.normal(shift, 1.0, n).tolist(),
                                                  rng.normal(0.0, 1.0, n).tolist()) <= level
                     for _ in range(400)])
    assert 0.74 <= found <= 0.86
    assert math.isinf(stats.rank_sum_detectable(4, 4, 0.01))  # 1/70 > 0.01
    k = stats.rounds_per_side_needed(0.1, 0.1, level=0.01)
    assert k is not None and stats.rank_sum_detectable(k, k, 0.01) * 0.1 <= 0.1
    assert stats.rank_sum_detectable(k - 1, k - 1, 0.01) * 0.1 > 0.1
    assert stats.rounds_per_side_needed(0.1, 0.0, level=0.01) is None
    # a sample spread is read median-unbiased: larger than the raw one, less so with more values
    assert stats.median_unbiased_sd(1.0, 5) > stats.median_unbiased_sd(1.0, 20) > 1.0


def test_the_detectable_shift_has_the_promised_power():
    n, level = 10, 0.01
    shift = stats.signed_rank_detectable(n, level)
    rng = np.random.default_rng(99)
    found = np.mean([stats.sign_flip_test([rng.normal(shift, 1.0, n)]).p_each[0] <= level
                     for _ in range(400)])
    assert 0.74 <= found <= 0.86
    assert stats.pairs_needed(0.1, 0.2, level=0.01) < stats.pairs_needed(0.1, 0.1, level=0.01)


def test_t_p_values_and_log_mean_interval():
    assert stats.t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=1e-3)
    assert stats.t_two_sided_p(0.0, 5) == pytest.approx(1.0)
    big = stats.log_mean_interval([1.0, 1.1, 0.9, 1.05], [27.0, 26.0, 28.0, 27.5], paired=True)
    assert big.p_value < 1e-4 and big.low > 3.0
    assert stats.log_mean_interval([1.0], [2.0], paired=False) is None
