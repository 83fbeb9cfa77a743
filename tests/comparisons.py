"""Comparison objects built in code for the renderer tests: seeded, with a known story."""

from __future__ import annotations

import random
from dataclasses import replace

from harness.compare import Comparison, MetricComparison
from harness.metrics import METRICS
from harness.results import ExperimentInfo, RequestLog, ResourceSeries, Results, Round

XSS = "<script>alert(1)</script>"


def metric(key: str, verdict: str, baseline: float | None, candidate: float | None, *,
           step: float | None = None, gate: bool | None = None, **extra) -> MetricComparison:
    name = key.split("@")[0].split("[")[0]
    m = METRICS[name]
    change = None if baseline in (None, 0) or candidate is None else candidate / baseline - 1
    values = {
        "key": key, "metric": name, "label": m.label, "unit": m.unit, "kind": m.kind,
        "better": m.better, "step": step, "gate": m.gate if gate is None else gate,
        "min_change": m.min_change, "baseline": baseline, "candidate": candidate,
        "change": change, "ci_low": None, "ci_high": None, "p_value": None, "p_adjusted": None,
        "detectable": None, "rounds_needed": None, "noise": None, "verdict": verdict,
        "evidence": "counter, 1 round per side" if m.kind == "counter" else
        "Mann-Whitney on 5 rounds per side", "reason": f"{m.label} is {verdict}",
    }
    if m.kind == "timing":  # judged on 5 rounds per side, as the evidence text says
        values["baseline_rounds"] = (baseline or 0.0,) * 5
        values["candidate_rounds"] = (candidate or 0.0,) * 5
    values.update(extra)
    return MetricComparison(**values)


def _round(rng: random.Random, index: int, side: str, step: float, slow: float, n: int) -> Round:
    offset = rng.uniform(0.0, 0.004)  # a per-round offset shared by all requests of the round
    intended = tuple(i / step for i in range(n))
    latency = tuple(0.010 * slow + offset + rng.expovariate(1 / 0.004) for _ in range(n))
    status = tuple(500 if i == 3 else 200 for i in range(n))
    log = RequestLog(
        endpoint=("channels",) * n, intended=intended, sent=tuple(t + 0.0002 for t in intended),
        latency=latency, service=tuple(v - 0.0002 for v in latency), status=status,
        nbytes=(600_000,) * n, error=(None,) * n,
    )
    duration = n / step
    ticks = [i * 0.5 for i in range(int(duration / 0.5) + 1)]
    series = ResourceSeries(
        interval=0.5, t=tuple(ticks),
        columns={
            "cpu_user": tuple(t * 0.3 * slow for t in ticks),
            "cpu_system": tuple(t * 0.05 for t in ticks),
            "rss": tuple(40e6 + t * 1e5 for t in ticks),
            "write_bytes": tuple(t * 2e4 * slow for t in ticks),
        },
    )
    lag = [rng.expovariate(1 / (0.002 * slow)) for _ in range(int(duration * 10))]
    return Round(
        index=index, side=side, instance=1, step=step, started_at="2026-11-30T00:00:00Z",
        duration=duration, requests=log, resources=series,
        probes={"loop_lag": {"kind": "asyncio", "interval": 0.1, "samples": lag}},
        summary={"responses_per_s": (n - 1) / duration * (1.0 if slow == 1 else 0.9)},
    )


def results(label: str, slow: float, *, seed: int, rounds: int = 3, n: int = 60,
            steps: tuple[float, ...] = (5.0, 10.0)) -> Results:
    rng = random.Random(seed)
    made = tuple(
        _round(rng, i * len(steps) + j, label, step, slow, n)
        for i in range(rounds) for j, step in enumerate(steps)
    )
    return Results(
        label=label,
        experiment=ExperimentInfo(name="api-stress", path="experiments/api-stress.toml",
                                  sha256="ab" * 32),
        environment={
            "platform": "linux", "machine": "x86_64", "cpu_model": "Test CPU", "cpu_count": 2,
            "python_version": "3.11", "python_implementation": "CPython",
            "harness_version": "0.1.0", "subject_commit": "0123abcd" if slow == 1 else "4567ef01",
            "experiment_hash": "ab" * 32,
            "jenkins_build_url": f"https://jenkins.example/job/perf/{label}/1/" if slow == 1
            else "javascript:alert(1)",
        },
        rounds=made,
        created_at="2026-11-30T00:00:00Z",
    )


QUERIES = {
    "baseline": [
        {"statement": "SELECT * FROM channels WHERE id = ?", "operation": "execute", "calls": 100,
         "total": 0.050, "max": 0.002, "min": 0.0001, "rows": 100,
         "callers": [{"where": "subjects/peer/api.py:42 channels", "calls": 100, "total": 0.05}]},
        {"statement": "INSERT INTO log VALUES (?, ?)", "operation": "execute", "calls": 10,
         "total": 0.010, "max": 0.002, "min": 0.0005, "rows": 0, "callers": []},
    ],
    "candidate": [
        {"statement": "SELECT * FROM channels WHERE id = ?", "operation": "execute", "calls": 100,
         "total": 0.450, "max": 0.012, "min": 0.0011, "rows": 100,
         "callers": [{"where": f"subjects/peer/api.py:42 {XSS}", "calls": 100, "total": 0.45}]},
        {"statement": "INSERT INTO log VALUES (?, ?)", "operation": "execute", "calls": 10,
         "total": 0.010, "max": 0.002, "min": 0.0005, "rows": 0, "callers": []},
    ],
    "changes": [
        {"statement": "SELECT * FROM channels WHERE id = ?", "operation": "execute",
         "baseline_total": 0.05, "candidate_total": 0.45, "total_change": 0.4,
         "baseline_calls": 100, "candidate_calls": 100, "calls_change": 0,
         "top_caller": "subjects/peer/api.py:42 channels"},
    ],
    "caller_changes": [
        {"where": "subjects/peer/api.py:42 channels", "baseline_total": 0.05,
         "candidate_total": 0.45, "total_change": 0.4, "baseline_calls": 100,
         "candidate_calls": 100, "calls_change": 0},
    ],
}
FUNCTIONS = [  # harness.instructions.function_changes: instructions per request
    {"endpoint": "channels", "function": "Objects/dictobject.c:insertdict",
     "baseline": 1.2e6, "candidate": 1.5e6, "change": 0.3e6},
]


PYTHON_FUNCTIONS = [  # harness.pyfunctions.python_function_changes: per request
    {"endpoint": "channels", "function": "subjects/peer/api.py:88 channels", "baseline": 410.0,
     "candidate": 820.0, "change": 410.0, "unit": "lines", "calls_baseline": 1.0,
     "calls_candidate": 1.0},
]


def comparison(*, candidate_label: str = XSS, with_details: bool = True) -> Comparison:
    """A regression in latency at 5 req/s and in written bytes; one gated metric inconclusive."""
    base = results("main", 1.0, seed=1)
    cand = replace(results("feature", 1.3, seed=2), label=candidate_label)
    metrics = (
        metric("errors", "unchanged", 3.0, 3.0),
        metric("write_chars_per_request", "regression", 1000.0, 1020.0, gate=True,  # asked for
               reason="bytes passed to write / request grew 2.0%, above the 1% that matters"),
        metric("instructions_per_request", "improvement", 2.0e6, 1.9e6),
        metric("latency_mean@5/s", "regression", 0.0141, 0.0183, step=5.0, ci_low=0.21,
               ci_high=0.39, p_value=0.0079, p_adjusted=0.0317, detectable=0.08, noise=0.03),
        metric("latency_p99@5/s", "unchanged", 0.030, 0.031, step=5.0, ci_low=-0.05,
               ci_high=0.09, p_value=0.42, p_adjusted=1.0, detectable=0.12),
        metric("responses_per_s@5/s", "unchanged", 4.92, 4.91, step=5.0, gate=True,
               p_value=0.69,
               p_adjusted=1.0, detectable=0.01, ci_low=-0.01, ci_high=0.005),
        metric("latency_mean@10/s", "inconclusive", 0.0142, 0.0160, step=10.0, ci_low=-0.1,
               ci_high=0.35, p_value=0.15, p_adjusted=0.45, detectable=0.31, rounds_needed=14,
               reason="the session's noise hides a 10% change"),
        metric("cpu_per_request", "unchanged", 0.0021, 0.0021, p_value=0.9, p_adjusted=1.0,
               detectable=0.04, ci_low=-0.03, ci_high=0.03),
        metric("rss_max", "unchanged", 41.2e6, 41.3e6, p_value=0.5, p_adjusted=1.0),
    )
    return Comparison(
        baseline=base, candidate=cand, metrics=metrics, overall="regression",
        headline=f"{candidate_label} is 30% slower than main at 5 req/s: the build fails.",
        reasons=("latency average @ 5 req/s regressed by +29.8% (p = 0.032)",
                 "bytes passed to write / request regressed by +2.0%"),
        warnings=("driver lag p99 was 3 ms in round 4",),
        details={"queries": QUERIES, "functions": FUNCTIONS, "python_functions": PYTHON_FUNCTIONS}
        if with_details else {},
    )
