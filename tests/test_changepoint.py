"""harness.changepoint on seeded synthetic series: known steps, creep, pure noise, gaps."""

from __future__ import annotations

import random

import numpy as np
import pytest

from harness import changepoint
from harness.changepoint import detect


def noisy(rng: random.Random, n: int, level: float, cv: float) -> list[float]:
    return [level * (1 + rng.gauss(0, cv)) for _ in range(n)]


def test_split_statistic_finds_an_obvious_split_and_refuses_short_segments():
    values = np.array([1.0] * 6 + [5.0] * 6)
    assert changepoint.split_statistic(values)[0] == 6
    assert changepoint.split_statistic(np.array([1.0, 2.0, 3.0]))[0] == -1


@pytest.mark.parametrize("seed", range(5))
def test_a_20_percent_timing_step_in_5_percent_noise_is_found_where_it_is(seed):
    rng = random.Random(seed)
    values = noisy(rng, 15, 10.0, 0.05) + noisy(rng, 15, 12.0, 0.05)
    found = detect(values, model="timing", seed=seed)
    assert found.enough and len(found.steps) == 1
    step = found.steps[0]
    assert abs(step.index - 15) <= 1 and step.previous == step.index - 1
    assert step.change == pytest.approx(0.20, abs=0.06)
    assert step.p_value is not None and step.p_value < 0.01 and step.confidence > 0.99


def test_two_steps_up_then_down_are_both_found():
    rng = random.Random(7)
    values = noisy(rng, 12, 10, 0.03) + noisy(rng, 12, 13, 0.03) + noisy(rng, 12, 10, 0.03)
    steps = detect(values, model="timing").steps
    assert [s.index for s in steps] == [12, 24]
    assert steps[0].change > 0.2 and steps[1].change < -0.15


def test_pure_noise_false_alarms_stay_near_alpha():
    alarms = 0
    trials = 60
    for seed in range(trials):
        values = noisy(random.Random(seed), 30, 10.0, 0.08)
        alarms += bool(detect(values, model="timing", seed=seed).steps)
    # alpha is 0.01 per series; 60 series give 0.6 expected alarms; 4 or more would be p < 0.003
    assert alarms <= 3


def test_slow_creep_is_found_as_level_steps_that_add_up():
    rng = random.Random(3)
    # five 2% steps, six nights each: each alone is below the 10% a PR gate resolves
    values = [10.0 * 1.02 ** (i // 6) * (1 + rng.gauss(0, 0.01)) for i in range(30)]
    steps = detect(values, model="timing").steps
    assert steps and all(s.change is not None and s.change > 0 for s in steps)
    drift = np.median(values[-6:]) / np.median(values[:6]) - 1
    assert drift > 0.07


def test_exact_model_catches_a_half_percent_step_timing_would_not():
    rng = random.Random(11)
    values = noisy(rng, 10, 2e6, 3e-5) + noisy(rng, 10, 2e6 * 1.005, 3e-5)
    exact = detect(values, model="exact")
    assert [s.index for s in exact.steps] == [10] and exact.steps[0].confirmed
    assert exact.steps[0].change == pytest.approx(0.005, abs=2e-4)
    assert exact.tolerance == changepoint.EXACT_FLOOR
    assert exact.steps[0].confidence > 0.9


def test_exact_model_ignores_one_outlier_and_flags_an_unconfirmed_newest_point():
    values = [100.0] * 6 + [120.0] + [100.0] * 5 + [150.0]
    steps = detect(values, model="exact").steps
    assert [(s.index, s.confirmed) for s in steps] == [(12, False)]
    assert "unconfirmed" in steps[0].note


def test_exact_creep_of_two_percent_steps_is_found_step_by_step():
    values = [1e6 * 1.02 ** (i // 4) for i in range(20)]
    steps = detect(values, model="exact").steps
    assert [s.index for s in steps] == [4, 8, 12, 16]
    assert all(s.change == pytest.approx(0.02) for s in steps)


def test_gaps_are_skipped_and_positions_refer_to_the_callers_indices():
    rng = random.Random(5)
    values: list[float | None] = noisy(rng, 12, 10, 0.03) + noisy(rng, 12, 14, 0.03)
    values[10] = values[11] = values[12] = None
    values[3] = float("nan")
    found = detect(values, model="timing")
    assert found.missing == 4 and found.points == 20
    (step,) = found.steps
    assert (step.previous, step.index) == (9, 13)
    assert "4 missing" in found.note


def test_too_few_points_detect_nothing_and_say_so():
    found = detect([1.0, 1.0, 5.0, 5.0, 5.0, None, None, 5.0], model="timing")
    assert not found.enough and found.steps == ()
    assert "6 points, 2 missing: too few for the timing model (it needs 8)" in found.note
    assert not detect([1.0, None, 2.0], model="exact").enough


def test_a_level_at_zero_is_measured_against_the_floor():
    values = [0.0] * 5 + [0.0005] * 5 + [3.0] * 5  # 0.05% of one unit is not a step
    steps = detect(values, model="exact", floor=1.0).steps
    assert [s.index for s in steps] == [10] and steps[0].before < 0.001


def test_detection_is_repeatable_for_a_seed():
    values = noisy(random.Random(2), 24, 10, 0.1)
    values[12:] = [v * 1.15 for v in values[12:]]
    first = detect(values, model="timing", seed=4)
    assert first == detect(values, model="timing", seed=4)


def _direct_q(values: list[float], t: int, u: int) -> float:
    """The energy statistic of X = values[:t] and Y = values[t:u], straight from the definition."""
    x, y = values[:t], values[t:u]
    m, k = len(x), len(y)
    between = sum(abs(a - b) for a in x for b in y) / (m * k)
    within_x = sum(abs(a - b) for i, a in enumerate(x) for b in x[i + 1:]) / (m * (m - 1) / 2)
    within_y = sum(abs(a - b) for i, a in enumerate(y) for b in y[i + 1:]) / (k * (k - 1) / 2)
    return m * k / (m + k) * (2 * between - within_x - within_y)


@pytest.mark.parametrize("seed", range(3))
def test_split_statistic_equals_the_definition_at_its_best_split(seed):
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) + (2.0 if i >= 7 else 0.0) for i in range(15)]
    position, q = changepoint.split_statistic(np.array(values))
    best = max((_direct_q(values, t, u), t) for t in range(3, 13) for u in range(t + 3, 16))
    assert q == pytest.approx(best[0]) and position == best[1]
