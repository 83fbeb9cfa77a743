"""The simulation suite the issue asks for (tests/simulation.py): seeded, a few seconds.

A/A false alarms with perf's adaptive loop stay at or below 1%; a +1.2% counter is never passed;
a +10% timing change is never passed on the artifact path; the smallest detectable change the
verdict claims has the power it promises (80%) within 5 points.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import stats
from harness.compare import Design, exit_code
from harness.perf import Plan
from tests.simulation import Noise, Truth, artifact_comparison, judge, perf_session, rounds

SHAPES = (
    Noise(cv=0.03),
    Noise(cv=0.10),
    Noise(cv=0.17),
    Noise(cv=0.10, drift=0.15),
    Noise(cv=0.10, outliers=0.05),
    Noise(cv=0.17, pair_share=0.0),
)


# min_change so small that only the sign-flip test decides: the false-alarm rate of the test
# and the sequential plan themselves (the gate's min_change / 2 margin removes nearly all of them)
TEST_ONLY = {"latency_mean": {"min_change": 0.0001}, "cpu_per_request": {"min_change": 0.0001}}


def test_aa_false_alarms_with_the_adaptive_loop_stay_at_one_percent():
    sessions = [perf_session(seed, SHAPES[seed % len(SHAPES)]) for seed in range(360)]
    assert sum(c.overall == "regression" for c in sessions) <= 3  # 1% of 360 (measured: 0)
    assert all(exit_code(c) == 0 for c in sessions)
    # the test and the alpha spending alone: 1.2% over 3,000 sessions (docs/statistics.md; the
    # sequential levels come from a normal approximation of the exact test); 720 sessions here
    alarms = sum(perf_session(seed, SHAPES[seed % len(SHAPES)], policies=TEST_ONLY).overall
                 == "regression" for seed in range(1000, 1720))
    assert alarms <= 14  # 2%


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


def test_the_promised_power_holds_within_five_points():
    # one gated timing metric, per-pair noise known: the change the verdict calls detectable
    # at 80% power is found in 75-85% of sessions by the verdict itself
    pairs, sd = 8, 0.06
    policies = {"latency_mean": {"gate": False}, "cpu_per_request": {"min_change": 0.0001}}
    level = 0.01
    claimed = stats.signed_rank_detectable(pairs, level) * sd
    noise = Noise(cv=sd / np.sqrt(2.0), pair_share=0.0)
    found = 0
    trials = 300
    for seed in range(trials):
        sides = rounds(seed, pairs, noise, Truth(timing=float(np.expm1(claimed))))
        comparison = judge(sides, pairs, seed, Design(level=level), policies)
        found += next(m for m in comparison.metrics if m.key == "cpu_per_request").verdict \
            == "regression"
    assert 0.75 <= found / trials <= 0.85, found / trials


def test_paired_analysis_needs_fewer_rounds_than_unpaired():
    # CV 10%, +20%, 6 pairs sharing 60% of the variance (DESIGN.md 8): paired power far above
    noise, truth = Noise(cv=0.10, pair_share=0.6), Truth(timing=0.20)
    paired = sum(perf_session(seed, noise, truth, first=8, planned=8).overall == "regression"
                 for seed in range(60))
    assert paired >= 45
