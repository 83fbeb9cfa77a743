"""The simulation suite the issue asks for (tests/simulation.py): seeded, a few seconds (the
larger samples are marked slow).

A/A false alarms with perf's adaptive loop stay at or below 1%; a +1.2% counter is never passed;
a +10% timing change is never passed on the artifact path; the smallest detectable change the
verdict claims has the power it promises (80%) within 5 points, paired and unpaired, and the
rounds it says would settle the change observed do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import stats
from harness.compare import Design, exit_code
from harness.perf import Plan
from tests.simulation import (
    Noise,
    Truth,
    artifact_comparison,
    judge,
    perf_session,
    rounds,
    separate_runs,
)

SHAPES = (
    Noise(cv=0.03),
    Noise(cv=0.10),
    Noise(cv=0.17),
    Noise(cv=0.10, drift=0.15),
    Noise(cv=0.10, outliers=0.05),
    Noise(cv=0.17, pair_share=0.0),
    Noise(cv=0.10, metric_share=0.0),  # latency and CPU independent: the max-T family's worst
)


# min_change so small that only the sign-flip test decides: the false-alarm rate of the test
# and the sequential plan themselves (the gate's min_change / 2 margin removes nearly all of them)
TEST_ONLY = {"latency_mean": {"min_change": 0.0001}, "cpu_per_request": {"min_change": 0.0001}}


def _within_one_percent(alarms: int, sessions: int) -> bool:
    """At most 1% false alarms, allowing two standard errors of a sample of `sessions`: the
    levels keep the rate at or below 1% by construction (test_stats checks them on 100,000
    fresh null sessions of the exact statistic); a seeded sample only estimates it."""
    return alarms <= sessions * 0.01 + 2.0 * (sessions * 0.01 * 0.99) ** 0.5


def test_aa_false_alarms_with_the_adaptive_loop_stay_at_one_percent():
    sessions = [perf_session(seed, SHAPES[seed % len(SHAPES)]) for seed in range(360)]
    assert sum(c.overall == "regression" for c in sessions) <= 3  # 1% of 360 (measured: 0)
    assert all(exit_code(c) == 0 for c in sessions)
    # the test and the alpha spending alone (min_change ~ 0): the per-look levels are calibrated
    # on the exact test's own joint null (stats.sequential_levels); measured 15 of 1,400 here,
    # 0.8% over 92,000 (docs/statistics.md)
    alarms = sum(perf_session(seed, SHAPES[seed % len(SHAPES)], policies=TEST_ONLY).overall
                 == "regression" for seed in range(1000, 2400))
    assert _within_one_percent(alarms, 1400), alarms


@pytest.mark.slow
def test_aa_false_alarms_stay_at_one_percent_on_every_noise_shape():
    by_shape = [0] * len(SHAPES)
    for seed in range(100_000, 104_200):
        shape = seed % len(SHAPES)
        by_shape[shape] += perf_session(seed, SHAPES[shape], policies=TEST_ONLY).overall \
            == "regression"
    assert _within_one_percent(sum(by_shape), 4200), by_shape  # measured 48 (1.1%)
    assert all(_within_one_percent(alarms, 600) for alarms in by_shape), by_shape  # most 10


def test_without_the_sequential_plan_the_same_loop_raises_more_alarms(monkeypatch):
    # the test above can fail: a fixed-size level (0.05, as a one-look design at 5% would use)
    # at each of the 7 looks, instead of the spending plan
    monkeypatch.setattr(Plan, "design", lambda self, pairs: Design(level=0.05))
    alarms = sum(perf_session(seed, SHAPES[seed % len(SHAPES)], policies=TEST_ONLY).overall
                 == "regression" for seed in range(1000, 1360))
    assert alarms > 14


@pytest.mark.parametrize("jitter", [0.003, 0.005])
def test_a_counter_up_by_1_2_percent_is_never_passed(jitter):
    noise = Noise(cv=0.10, counter_jitter=jitter)
    for seed in range(60):
        comparison = perf_session(seed, noise, Truth(counter=0.012))
        written = next(m for m in comparison.metrics if m.key == "write_chars_per_request")
        assert written.verdict in ("regression", "inconclusive"), (seed, written.reason)
        assert comparison.overall != "pass"


def test_a_two_percent_counter_with_one_percent_jitter_is_found():
    found = sum(perf_session(seed, Noise(cv=0.10, counter_jitter=0.01),
                             Truth(counter=0.02)).overall == "regression" for seed in range(40))
    assert found >= 36


@pytest.mark.parametrize("speed", [1.05, 0.95, 1.10, 0.90])
def test_ten_percent_slower_is_never_passed_on_the_artifact_path(speed):
    for seed in range(40):
        comparison = artifact_comparison(seed, Noise(cv=0.05), Truth(timing=0.10), speed=speed)
        assert comparison.overall != "pass"
        timing = [m for m in comparison.gated if m.kind == "timing"]
        assert all(m.verdict == "inconclusive" and "same-agent" in m.reason for m in timing)


def test_half_the_minimum_change_does_not_fail_the_build():
    # only the point estimate reaching min_change used to fail up to 13.6% of such sessions
    failed = sum(perf_session(seed, Noise(cv=0.03), Truth(timing=0.05)).overall == "regression"
                 for seed in range(120))
    assert failed <= 2


# one gated timing metric (min_change ~ 0), so the power is the test's own
POWER_POLICIES = {"latency_mean": {"gate": False}, "cpu_per_request": {"min_change": 0.0001}}


def _cpu(comparison):
    return next(m for m in comparison.metrics if m.key == "cpu_per_request")


def _promise_kept(session, trials: int = 300) -> tuple[float, float]:
    """Power at what the report promised: each session's claimed detectable change is read on
    identical code; the same session (same noise) is then run with that change made real, and
    with the median claim. A change does not move the noise, so the claim is the one the
    report would have made. Returns (found at the median claim, found at each own claim)."""
    claims = [_cpu(session(seed, 0.0)).detectable for seed in range(trials)]
    middle = float(np.median(claims))
    at_median = sum(_cpu(session(seed, middle)).verdict == "regression" for seed in range(trials))
    at_own = sum(_cpu(session(seed, claims[seed])).verdict == "regression"
                 for seed in range(trials))
    return at_median / trials, at_own / trials


@pytest.mark.parametrize(("pairs", "sd"), [(8, 0.06), (12, 0.10)])
def test_the_promised_power_holds_within_five_points_paired(pairs, sd):
    noise = Noise(cv=sd / math.sqrt(2.0), pair_share=0.0)
    at_median, at_own = _promise_kept(lambda seed, change: judge(
        rounds(seed, pairs, noise, Truth(timing=change)), pairs, seed, Design(level=0.01),
        POWER_POLICIES))
    assert 0.75 <= at_median <= 0.85, at_median  # measured 0.77, 0.80
    assert 0.75 <= at_own <= 0.90, at_own  # measured 0.83, 0.84


def test_the_promise_at_the_last_look_of_perfs_plan_holds_for_the_max_t_family():
    # both timing metrics gated (max-T over the pair), judged at the plan's last look (12 pairs,
    # level 0.0061): the resolution the report prints there has the power it promises
    plan, noise = Plan(first=6, planned=12), Noise(cv=0.10, pair_share=0.6)
    both = {"latency_mean": {"min_change": 0.0001}, "cpu_per_request": {"min_change": 0.0001}}
    at_median, at_own = _promise_kept(lambda seed, change: judge(
        rounds(seed, 12, noise, Truth(timing=change)), 12, seed, plan.design(12), both))
    assert 0.75 <= at_median <= 0.85, at_median  # measured 0.80
    assert 0.75 <= at_own <= 0.90, at_own  # measured 0.85


@pytest.mark.parametrize(("per_side", "cv"), [(6, 0.05), (12, 0.10)])
def test_the_promised_power_holds_within_five_points_unpaired(per_side, cv):
    # harness compare of two separate runs on this agent: one-sided exact Mann-Whitney
    noise = Noise(cv=cv, pair_share=0.0)
    at_median, at_own = _promise_kept(lambda seed, change: separate_runs(
        seed, noise, Truth(timing=change), rounds_per_side=per_side, policies=POWER_POLICIES))
    assert 0.75 <= at_median <= 0.85, at_median  # measured 0.82, 0.82
    assert 0.75 <= at_own <= 0.90, at_own  # measured 0.86, 0.82


def test_the_rounds_said_to_settle_a_change_do():
    # an unpaired +15% at CV 10% from 5 + 5 rounds is inconclusive and says how many rounds
    # per side would settle the change observed; at the true noise, that many rounds find a
    # change of that size in about 80% of comparisons (the same power computation as the claim)
    noise = Noise(cv=0.10, pair_share=0.0)
    first = _cpu(separate_runs(3, noise, Truth(timing=0.15), rounds_per_side=5,
                               policies=POWER_POLICIES))
    assert first.verdict == "inconclusive"
    assert first.rounds_needed_for_change and "observed" in first.reason, first.reason
    k = stats.rounds_per_side_needed(math.hypot(0.10, 0.01), math.log1p(0.15), level=0.01)
    assert k is not None
    found = sum(_cpu(separate_runs(seed, noise, Truth(timing=0.15), rounds_per_side=k,
                                   policies=POWER_POLICIES)).verdict == "regression"
                for seed in range(200))
    assert 0.75 <= found / 200 <= 0.88, (k, found)


def test_paired_analysis_needs_fewer_rounds_than_unpaired():
    # CV 10%, +20%, 6 pairs sharing 60% of the variance (DESIGN.md 8): paired power far above
    noise, truth = Noise(cv=0.10, pair_share=0.6), Truth(timing=0.20)
    paired = sum(perf_session(seed, noise, truth, first=8, planned=8).overall == "regression"
                 for seed in range(60))
    assert paired >= 45
