"""CUPED for the paired timing test: per-pair log ratios adjusted for the machine's speed.

Each round may carry a calibration (harness.calibration): a fixed workload timed just before and
after its measured window. For pair i, c_i is the calibration's log ratio (candidate round over
baseline round) and d_i a timing metric's log ratio, oriented so that positive is worse. When the
machine was slower during one round of a pair, both move together; the adjusted ratio

    d_i' = d_i - theta * c_i,    theta = sum(d_i c_i) / sum(c_i^2)

keeps the change and drops the part the machine's speed explains. theta is a regression through
the origin, not on centred values: flipping which round of a pair is "candidate" negates d_i and
c_i together and leaves theta, and the share of variance it explains, unchanged. So under "no
change" the sign-flip test on d' stays exact although theta comes from the same pairs, and the
rule deciding whether to adjust (fixed here, in advance) cannot be gamed by the data's signs.
See docs/statistics.md ("Machine-speed covariate").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.calibration import speed
from harness.results import Results

MIN_PAIRS = 8  # fewer pairs estimate theta too poorly to pay for the degree of freedom it costs
MIN_EXPLAINED = 0.25  # share of the per-pair sum of squares the calibration must explain
# which calibration time stands for the machine's speed, per metric (fixed before a session is
# judged, never chosen from its data): CPU-time metrics follow the calibration's CPU time,
# wall-clock metrics its wall time; both pieces (loop and copy) together, their geometric mean
# (measured over three sessions: R^2 0.54, 0.39, 0.43 for latency, where the loop alone gave
# 0.57, 0.26, 0.29 and the copy alone 0.46, 0.42, 0.46; docs/statistics.md)
CPU_METRICS = frozenset({"cpu_per_request", "cpu_seconds"})
PIECES = ("loop", "copy")


@dataclass(frozen=True)
class Adjustment:
    """What the covariate did to one metric's per-pair log ratios."""

    key: str
    covariate: str  # e.g. "loop+copy/wall": calibration pieces and clock
    used: bool
    pairs: int
    theta: float | None
    explained: float | None  # share of sum(d^2) explained by c (the rule's quantity)
    variance_removed: float | None  # 1 - var(d') / var(d), sample variances about the means
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"covariate": self.covariate, "used": self.used, "pairs": self.pairs,
                "theta": self.theta, "explained": self.explained,
                "variance_removed": self.variance_removed, "reason": self.reason}


def clock_for(metric: str) -> str:
    return "cpu" if metric in CPU_METRICS else "wall"


def pair_covariates(baseline: Results, candidate: Results, step: float | None,
                    pairs: int) -> dict[str, np.ndarray]:
    """Per-pair calibration log ratios by clock ("wall", "cpu") for the rounds of one rate step,
    in the order compare pairs them (valid rounds of instance 1 by index); empty when a round
    has no usable calibration or the counts do not match the pairs."""
    sides = []
    for results in (baseline, candidate):
        rounds = sorted((r for r in results.rounds
                         if r.valid and r.instance == 1 and r.step == step),
                        key=lambda r: r.index)
        sides.append(rounds)
    if not (len(sides[0]) == len(sides[1]) == pairs):
        return {}
    out = {}
    for clock in ("wall", "cpu"):
        values = [(_time(b.calibration, clock), _time(c.calibration, clock))
                  for b, c in zip(sides[0], sides[1], strict=True)]
        if all(b and c for b, c in values):
            out[clock] = np.log([c / b for b, c in values])  # type: ignore[operator]
    return out


def _time(calibration: dict[str, Any] | None, clock: str) -> float | None:
    """The geometric mean of the pieces' times (each itself over the before and after runs)."""
    times = [speed(calibration, piece, clock) for piece in PIECES]
    if any(t is None for t in times):
        return None
    return math.exp(sum(math.log(t) for t in times if t is not None) / len(times))


def name(clock: str) -> str:
    return f"{'+'.join(PIECES)}/{clock}"


def fit(d: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """(theta, share of sum(d^2) explained) of the regression of d on c through the origin."""
    cc, dd = float(np.dot(c, c)), float(np.dot(d, d))
    if cc <= 0 or dd <= 0:
        return 0.0, 0.0
    dc = float(np.dot(d, c))
    return dc / cc, dc * dc / (cc * dd)


def adjust(key: str, d: np.ndarray, c: np.ndarray | None, *, covariate: str,
           min_pairs: int = MIN_PAIRS,
           min_explained: float = MIN_EXPLAINED) -> tuple[np.ndarray, Adjustment]:
    """d adjusted by c when the rule says it helps (enough pairs, enough explained), else d."""
    n = len(d)
    if c is None or len(c) != n:
        return d, Adjustment(key, covariate, False, n, None, None, None,
                             "no calibration in every round of both sides")
    # re-fitted at every look on all its pairs (fitting on the first pairs only and holding
    # theta was no better in simulation: A/A 1.17% against 1.03%, same 3,000 seeds)
    theta, explained = fit(d, c)
    adjusted = d - theta * c
    before = float(np.var(d, ddof=1)) if n > 1 else 0.0
    removed = 1.0 - float(np.var(adjusted, ddof=1)) / before if before > 0 else 0.0
    if n < min_pairs:
        used, reason = False, f"{n} pairs, fewer than the {min_pairs} the adjustment needs"
    elif explained < min_explained:
        used, reason = False, (f"the calibration explains {explained:.0%} of the per-pair "
                               f"variation, less than the {min_explained:.0%} required")
    else:
        used, reason = True, (f"the calibration explains {explained:.0%} of the per-pair "
                              f"variation; adjusted with theta {theta:.2f}")
    out = Adjustment(key, covariate, used, n, round(theta, 4), round(explained, 4),
                     round(removed, 4) if math.isfinite(removed) else None, reason)
    return (adjusted if used else d), out
