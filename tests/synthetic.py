"""Synthetic rounds whose truth is known, shaped like our measurements (DESIGN.md section 8).

Every request of a round shares that round's random offset (the machine's conditions during the
round) and adds its own noise; round values are summaries over the round's requests, so their
round-to-round variation is mostly the offset's (about 10% with the defaults).
"""

from __future__ import annotations

import numpy as np

from harness.results import ExperimentInfo, Results, Round

ENVIRONMENT = {
    "platform": "linux", "machine": "x86_64", "cpu_model": "Synthetic CPU", "cpu_count": 2,
    "python_version": "3.11", "python_implementation": "CPython", "experiment_hash": "ab" * 32,
}
LATENCY = 0.010  # seconds
CPU_PER_REQUEST = 0.002  # seconds


def timing_summary(rng: np.random.Generator, *, scale: float, offset_sd: float,
                   requests: int = 200, shared: float = 1.0) -> dict[str, float]:
    """Round values of the default timing metrics for one round of `requests` requests;
    `shared` is a factor both rounds of an interleaved pair share (the machine's conditions)."""
    offset = shared * float(np.exp(rng.normal(0.0, offset_sd)))
    latency = LATENCY * scale * offset * rng.lognormal(0.0, 0.5, requests)
    cpu = CPU_PER_REQUEST * scale * offset * rng.lognormal(0.0, 0.5, requests)
    return {
        "latency_mean": float(latency.mean()),
        "latency_p50": float(np.median(latency)),
        "latency_p99": float(np.percentile(latency, 99)),
        "cpu_per_request": float(cpu.mean()),
        "responses_per_s": 50.0 * float(np.exp(rng.normal(0.0, 0.001))),
    }


def counter_summary(*, write_chars: float = 1000.0, queries: float = 3.0,
                    errors: float = 0.0) -> dict[str, float]:
    """Round values of counters: exact, as measured (DESIGN.md section 8)."""
    return {"write_chars_per_request": write_chars, "queries_per_request": queries,
            "errors": errors}


def make_round(index: int, summary: dict[str, float | None], *, side: str = "candidate",
               step: float | None = None, instance: int = 1, valid: bool = True,
               invalid_reason: str | None = None, **kwargs) -> Round:
    return Round(index=index, side=side, instance=instance, step=step,
                 started_at="2026-11-30T00:00:00Z", duration=20.0, valid=valid,
                 invalid_reason=invalid_reason, summary=dict(summary), **kwargs)


def make_results(rounds, *, label: str = "candidate", environment=None, policies=None,
                 instructions=None, session=None) -> Results:
    return Results(
        label=label,
        experiment=ExperimentInfo(name="synthetic", path="experiments/synthetic.toml",
                                  sha256="ab" * 32, policies=dict(policies or {})),
        environment=dict(ENVIRONMENT if environment is None else environment),
        rounds=tuple(rounds), created_at="2026-11-30T00:00:00Z", instructions=instructions,
        session=dict(session or {}),
    )


def session(seed: int, rounds: int, *, shift: float = 0.0, offset_sd: float = 0.09,
            counters: bool = True, baseline_rounds: int | None = None,
            requests: int = 200, paired: bool = False,
            pair_sd: float = 0.0) -> tuple[Results, Results]:
    """Baseline and candidate, interleaved; the candidate's timing is (1 + shift) times slower.

    `paired` records the session as perf does (mode, seed, pairs), so compare judges per-pair
    ratios; `pair_sd` adds a condition both rounds of a pair share (log-normal factor).
    """
    rng = np.random.default_rng(seed)
    sides: dict[str, list[Round]] = {"baseline": [], "candidate": []}
    counts = {"baseline": baseline_rounds or rounds, "candidate": rounds}
    index = 0
    for i in range(max(counts.values())):
        shared = float(np.exp(rng.normal(0.0, pair_sd))) if pair_sd else 1.0
        for side, scale in (("baseline", 1.0), ("candidate", 1.0 + shift)):
            if i >= counts[side]:
                continue
            summary = timing_summary(rng, scale=scale, offset_sd=offset_sd, requests=requests,
                                     shared=shared)
            if counters:
                summary.update(counter_summary())
            sides[side].append(make_round(index, summary, side=side))
            index += 1
    record = ({"mode": "interleaved", "seed": seed, "pairs": rounds, "max_error_rate": 0.01}
              if paired else {})
    return (make_results(sides["baseline"], label="baseline", session=record),
            make_results(sides["candidate"], label="candidate", session=record))
