"""Seeded simulations of whole perf sessions: synthetic rounds in perf's randomised ABBA order,
judged by our own compare() at every look of perf's sequential plan (harness.perf.Plan).

The noise shapes are the ones measured on our machines (DESIGN.md section 8): round-to-round CV
of 3, 10 and 17%, a share of it common to both rounds of a pair, a slow drift over the session,
and outlier rounds 1.5x slower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.compare import Comparison, Design, compare
from harness.perf import Plan, settled
from tests.synthetic import make_results, make_round

LATENCY, CPU, WRITTEN = 0.010, 0.002, 1000.0


@dataclass(frozen=True)
class Noise:
    """How one session's rounds vary."""

    cv: float = 0.10  # round-to-round coefficient of variation of the timing metrics
    pair_share: float = 0.6  # share of the variance both rounds of a pair have in common
    drift: float = 0.0  # relative slow-down from the first to the last round of the session
    outliers: float = 0.0  # chance that a round runs 1.5x slower
    counter_jitter: float = 0.0  # relative standard deviation of the counter between rounds
    metric_share: float = 1.0  # share of a round's variance latency and CPU have in common


@dataclass(frozen=True)
class Truth:
    """What the candidate really changed."""

    timing: float = 0.0  # relative change of latency and CPU per request
    counter: float = 0.0  # relative change of bytes written per request


def _round(rng, index, side, shared, noise: Noise, truth: Truth, total: int):
    own = rng.normal(0.0, noise.cv * math.sqrt(1.0 - noise.pair_share))
    factor = math.exp(shared[0] + own) * (1.0 + noise.drift * index / max(1, total - 1))
    cpu_factor = factor
    if noise.metric_share < 1.0:  # CPU's own share of the round's noise, drawn apart
        mine = rng.normal(0.0, noise.cv * math.sqrt(1.0 - noise.pair_share))
        mixed = (math.sqrt(noise.metric_share) * (shared[0] + own)
                 + math.sqrt(1.0 - noise.metric_share) * (shared[1] + mine))
        cpu_factor = math.exp(mixed) * (1.0 + noise.drift * index / max(1, total - 1))
    if noise.outliers and rng.random() < noise.outliers:
        factor *= 1.5
        cpu_factor *= 1.5
    candidate = side == "candidate"
    timing = (1.0 + truth.timing) if candidate else 1.0
    counter = (1.0 + truth.counter) if candidate else 1.0
    return make_round(index, {
        "latency_mean": LATENCY * timing * factor * math.exp(rng.normal(0.0, 0.01)),
        "cpu_per_request": CPU * timing * cpu_factor * math.exp(rng.normal(0.0, 0.01)),
        "write_chars_per_request":
            WRITTEN * counter * (1.0 + rng.normal(0.0, noise.counter_jitter)),
        "errors": 0.0,
    }, side=side)


def rounds(seed: int, pairs: int, noise: Noise, truth: Truth):
    """Both sides' rounds of `pairs` interleaved pairs, in perf's randomised order."""
    rng = np.random.default_rng(seed)
    sides: dict[str, list] = {"baseline": [], "candidate": []}
    for pair in range(pairs):
        shared = (rng.normal(0.0, noise.cv * math.sqrt(noise.pair_share)),
                  rng.normal(0.0, noise.cv * math.sqrt(noise.pair_share))
                  if noise.metric_share < 1.0 else 0.0)
        order = ("baseline", "candidate") if rng.random() < 0.5 else ("candidate", "baseline")
        for side in order:
            index = 2 * pair + (side != order[0])
            sides[side].append(_round(rng, index, side, shared, noise, truth, 2 * pairs))
    return sides


# The simulated counter is a gated counter with a 1% minimum, as an experiment that gates bytes
# written declares it (by default write_chars is shown, not gated: log volume is not a regression).
COUNTER_POLICY = {"write_chars_per_request": {"gate": True, "min_change": 0.01}}


def judge(sides, pairs: int, seed: int, design: Design, policies=None) -> Comparison:
    record = {"mode": "interleaved", "seed": seed, "pairs": pairs, "max_error_rate": 0.01}
    return compare(make_results(sides["baseline"][:pairs], label="baseline", session=record),
                   make_results(sides["candidate"][:pairs], session=record),
                   design=design, policies={**COUNTER_POLICY, **(policies or {})})


def perf_session(seed: int, noise: Noise, truth: Truth = Truth(), *, first: int = 6,
                 planned: int = 12, policies=None) -> Comparison:
    """perf's adaptive loop: a look after `first` pairs, then one per pair until settled or
    `planned` (alpha spent across the looks as perf spends it)."""
    plan = Plan(first=first, planned=planned)
    sides = rounds(seed, planned, noise, truth)
    for pairs in range(first, planned + 1):
        comparison = judge(sides, pairs, seed, plan.design(pairs), policies)
        if settled(comparison):
            return comparison
    return comparison


def artifact_comparison(seed: int, noise: Noise, truth: Truth, *, speed: float,
                        rounds_per_side: int = 6) -> Comparison:
    """A nightly artifact measured at another time (machine `speed` times slower then) against
    the candidate measured here: two separate, unpaired runs."""
    nightly = rounds(seed, rounds_per_side, noise, Truth())["baseline"]
    slowed = [make_round(r.index, {**r.summary,
                                   "latency_mean": r.summary["latency_mean"] * speed,
                                   "cpu_per_request": r.summary["cpu_per_request"] * speed},
                         side="baseline") for r in nightly]
    here = rounds(seed + 10_000, rounds_per_side, noise, truth)["candidate"]
    return compare(make_results(slowed, label="baseline"), make_results(here),
                   design=Design(confirmed=False), policies=COUNTER_POLICY)


def separate_runs(seed: int, noise: Noise, truth: Truth, *, rounds_per_side: int,
                  policies=None) -> Comparison:
    """`harness compare` of two separate runs measured on this agent (no pairs, confirmed)."""
    baseline = rounds(seed, rounds_per_side, noise, Truth())["baseline"]
    candidate = rounds(seed + 10_000, rounds_per_side, noise, truth)["candidate"]
    return compare(make_results(baseline, label="baseline"),
                   make_results(candidate),
                   design=Design(), policies={**COUNTER_POLICY, **(policies or {})})
