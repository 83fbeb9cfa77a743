"""Change points in a metric's nightly series: where its level stepped, by how much, how sure.

Two models, because the evidence differs by orders of magnitude (DESIGN.md section 8):

* timing series (latency, CPU, throughput: 3-17% night-to-night noise) use E-divisive with means
  (Matteson & James 2014, the method behind MongoDB's and Apache Otava's detectors): the split that
  maximises the energy distance between the two sides is tested by permuting the segment's values;
  a significant split is kept and both halves are searched again, until a test fails;
* exact series (instruction counts, counters: 0.003-0.1% noise) use a tighter model: the level may
  move only within a tolerance derived from the series' own point-to-point noise (never below
  EXACT_FLOOR); a point beyond it that the next point confirms opens a new level, one that the next
  point contradicts is an outlier, and a departure in the last point is reported as unconfirmed.

Missing values (None, NaN: a night without a result) are left out of the detection; step positions
always refer to the caller's indices, so the commit range of a step spans any gap. Too few points
give no steps and say so, never a guess.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

Model = Literal["timing", "exact"]

MIN_POINTS = {"timing": 8, "exact": 3}  # fewer present points: nothing is detected
MIN_SEGMENT = 3  # points on each side of a timing split (fewer makes the permutation test blind)
ALPHA = 0.01  # significance of each permutation test: the false-alarm rate per series
PERMUTATIONS = 199  # p-values down to 1/200 = 0.005, so ALPHA = 0.01 can be reached
MAX_STEPS = 10
EXACT_FLOOR = 0.001  # an exact series' tolerance is never below 0.1%
EXACT_NOISE_FACTOR = 5.0  # tolerance = 5 x the median point-to-point relative difference


@dataclass(frozen=True)
class Step:
    """One change of level: `index` is the first point at the new level, `previous` the last one
    at the old level (they differ by more than one when nights are missing in between)."""

    previous: int
    index: int
    before: float  # median of the old level's points
    after: float  # median of the new level's points
    change: float | None  # after / before - 1; None when the old level is 0
    p_value: float | None  # permutation test (timing); None for the exact model
    confidence: float  # 1 - p (timing); for exact steps 1 - noise / |change|, halved if unconfirmed
    confirmed: bool  # a later point agrees with the new level
    note: str  # one phrase for people: how the step was found

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Detection:
    """Steps found in one series, the model used, and what people should know about the series."""

    model: Model
    points: int  # present (finite) values
    missing: int  # values given as None/NaN
    enough: bool  # False: too few points, nothing was looked for
    steps: tuple[Step, ...]
    note: str
    tolerance: float | None = None  # the exact model's relative tolerance

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [s.to_json() for s in self.steps]
        return data


def detect(values: Sequence[float | None], *, model: Model, alpha: float = ALPHA,
           permutations: int = PERMUTATIONS, seed: int = 0, floor: float = 0.0) -> Detection:
    """Find the steps of one series, oldest value first (see the module doc for both models).

    `floor` is the smallest magnitude a level is compared with (relative changes from near 0 are
    measured against it), used by the exact model. `seed` makes the permutation tests repeatable.
    """
    present = [i for i, v in enumerate(values)
               if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    series = np.array([float(values[i] or 0.0) for i in present], dtype=float)
    missing = len(values) - len(present)
    gaps = f", {missing} missing" if missing else ""
    needed = MIN_POINTS[model]
    if len(present) < needed:
        return Detection(model, len(present), missing, False, (), (
            f"{len(present)} points{gaps}: too few for the {model} model (it needs {needed}); "
            f"nothing detected"))
    if model == "timing":
        found = e_divisive(series, alpha=alpha, permutations=permutations, seed=seed)
        steps = _timing_steps(series, found, present)
        note = (f"{len(present)} points{gaps}; E-divisive means, permutation test at "
                f"p <= {alpha:g} ({permutations} permutations)")
        return Detection(model, len(present), missing, True, tuple(steps), note)
    tolerance = exact_tolerance(series, floor=floor)
    steps = _exact_steps(series, present, tolerance, floor)
    note = (f"{len(present)} points{gaps}; exact model, a level moves by more than "
            f"{tolerance:.2%} (5 x the median point-to-point change, at least {EXACT_FLOOR:.1%})")
    return Detection(model, len(present), missing, True, tuple(steps), note, tolerance)


# ---------------------------------------------------------------------------------------------
# E-divisive with means


def split_statistic(values: np.ndarray, min_size: int = MIN_SEGMENT) -> tuple[int, float]:
    """The best split of `values` and its scaled energy statistic (index of the first point after
    the split, q); (-1, -inf) when the segment is too short to split.

    q(t, u) = m k / (m + k) * (2 E|X - Y| - E|X - X'| - E|Y - Y'|) with X the m values before t
    and Y the k values from t up to u (Matteson & James' second end point u lets a short bump in
    the middle of a long segment stand out); every (t, u) is scored at once from prefix sums of
    the distance matrix, and the split is the t of the best pair.
    """
    n = len(values)
    if n < 2 * min_size:
        return -1, -math.inf
    distances = np.abs(values[:, None] - values[None, :])
    prefix = np.zeros((n + 1, n + 1))
    prefix[1:, 1:] = distances.cumsum(axis=0).cumsum(axis=1)
    t = np.arange(min_size, n - min_size + 1)[:, None]
    u = np.arange(2 * min_size, n + 1)[None, :]
    m, k = t.astype(float), (u - t).astype(float)
    valid = k >= min_size
    k = np.where(valid, k, 2.0)  # placeholders where u is too close to t; masked below
    uu = np.where(valid, u, t + 2)
    within_left = prefix[t, t]  # ordered pairs, so each unordered pair twice
    cross = prefix[t, uu] - prefix[t, t]
    within_right = prefix[uu, uu] - 2 * prefix[t, uu] + prefix[t, t]
    q = (m * k / (m + k)) * (2 * cross / (m * k) - within_left / (m * (m - 1))
                             - within_right / (k * (k - 1)))
    q = np.where(valid, q, -np.inf)
    row, _ = np.unravel_index(int(np.argmax(q)), q.shape)
    return int(t[row, 0]), float(q.max())


def permutation_p_value(values: np.ndarray, observed: float, *, permutations: int,
                        rng: random.Random, min_size: int = MIN_SEGMENT) -> float:
    """How often a random order of the same values splits at least as well: (1 + hits) / (1 + N)."""
    shuffled = values.copy()
    hits = 0
    order = list(range(len(values)))
    for _ in range(permutations):
        rng.shuffle(order)
        shuffled[:] = values[order]
        if split_statistic(shuffled, min_size)[1] >= observed:
            hits += 1
    return (1 + hits) / (1 + permutations)


def e_divisive(values: np.ndarray, *, alpha: float = ALPHA, permutations: int = PERMUTATIONS,
               seed: int = 0, min_size: int = MIN_SEGMENT,
               max_steps: int = MAX_STEPS) -> list[tuple[int, float]]:
    """Significant change points as (position in `values`, p-value), in position order.

    Each round scores the best split of every current segment, tests the strongest one by
    permutation, and stops at the first split that is not significant at `alpha`.
    """
    rng = random.Random(seed)
    bounds = [0, len(values)]
    found: list[tuple[int, float]] = []
    while len(found) < max_steps:
        candidates = []  # (q, position, start, end) of each segment's best split
        for start, end in zip(bounds, bounds[1:], strict=False):
            position, q = split_statistic(values[start:end], min_size)
            if position > 0:
                candidates.append((q, start + position, start, end))
        if not candidates or max(candidates)[0] <= 0:
            break
        q, position, start, end = max(candidates)
        p = permutation_p_value(values[start:end], q, permutations=permutations, rng=rng,
                                min_size=min_size)
        if p > alpha:  # (1 + hits) / (1 + N) is a valid p-value: P(p <= alpha) <= alpha
            break
        found.append((position, p))
        bounds = sorted({*bounds, position})
    return sorted(found)


def _timing_steps(series: np.ndarray, found: list[tuple[int, float]],
                  present: list[int]) -> list[Step]:
    cuts = [0, *(pos for pos, _ in found), len(series)]
    steps = []
    for number, (position, p) in enumerate(found, start=1):
        before = float(np.median(series[cuts[number - 1]:position]))
        after = float(np.median(series[position:cuts[number + 1]]))
        steps.append(Step(
            previous=present[position - 1], index=present[position], before=before, after=after,
            change=_change(before, after), p_value=p, confidence=1.0 - p, confirmed=True,
            note=f"E-divisive split, permutation p = {p:.3f}"))
    return steps


# ---------------------------------------------------------------------------------------------
# The exact model


def _change(before: float, after: float) -> float | None:
    return None if before == 0 else after / before - 1.0


def _distance(a: float, b: float, floor: float) -> float:
    """Relative distance of b from a, measured against max(|a|, floor)."""
    scale = max(abs(a), floor)
    if scale == 0:
        return 0.0 if a == b else math.inf
    return abs(b - a) / scale


def exact_tolerance(series: np.ndarray, *, floor: float = 0.0) -> float:
    """5 x the median relative change between neighbouring points, at least EXACT_FLOOR."""
    diffs = [_distance(a, b, floor) for a, b in zip(series, series[1:], strict=False)]
    finite = [d for d in diffs if math.isfinite(d)]
    noise = float(np.median(finite)) if finite else 0.0
    return max(EXACT_FLOOR, EXACT_NOISE_FACTOR * noise)


def _exact_steps(series: np.ndarray, present: list[int], tolerance: float,
                 floor: float) -> list[Step]:
    """Walk the series keeping the current level's points; open a new level where a departure
    beyond `tolerance` is confirmed by the next point (or is the last point: unconfirmed)."""
    levels: list[list[int]] = [[0]]  # positions (in `series`) of each level's points
    i = 1
    while i < len(series):
        level = float(np.median(series[levels[-1]]))
        if _distance(level, series[i], floor) <= tolerance:
            levels[-1].append(i)
        elif i + 1 < len(series) and _distance(level, series[i + 1], floor) <= tolerance:
            pass  # the next point is back at the level: an outlier, not a step
        else:
            levels.append([i])
        i += 1
    steps = []
    for old, new in zip(levels, levels[1:], strict=False):
        before = float(np.median(series[old]))
        after = float(np.median(series[new]))
        change = _change(before, after)
        size = abs(change) if change is not None else math.inf
        confirmed = len(new) > 1
        confidence = max(0.0, 1.0 - tolerance / EXACT_NOISE_FACTOR / size) if size else 0.0
        steps.append(Step(
            previous=present[old[-1]], index=present[new[0]], before=before, after=after,
            change=change, p_value=None, confidence=confidence if confirmed else confidence / 2,
            confirmed=confirmed,
            note=("exact: beyond the tolerance, confirmed by "
                  f"{len(new) - 1} later point(s)" if confirmed else
                  "exact: beyond the tolerance in the newest point only; unconfirmed")))
    return steps
