"""Shared fixtures: small, valid results objects built in code."""

from __future__ import annotations

import pytest

from harness.results import ExperimentInfo, RequestLog, ResourceSeries, Results, Round


def make_round(
    index: int = 0, side: str = "candidate", latency: float = 0.01, n: int = 10
) -> Round:
    log = RequestLog(
        endpoint=("channels",) * n,
        intended=tuple(i * 0.2 for i in range(n)),
        sent=tuple(i * 0.2 + 0.0001 for i in range(n)),
        latency=(latency,) * n,
        service=(latency - 0.0001,) * n,
        status=(200,) * n,
        nbytes=(1000,) * n,
        error=(None,) * n,
    )
    series = ResourceSeries(
        interval=0.5,
        t=(0.0, 1.0, 2.0),
        columns={"cpu_user": (0.0, 0.1, 0.2), "cpu_system": (0.0, 0.0, 0.05), "rss": (1e6,) * 3},
        unavailable=("read_bytes",),
    )
    return Round(index=index, side=side, instance=1, step=5.0, started_at="2026-11-30T00:00:00Z",
                 duration=2.0, requests=log, resources=series, summary={"latency_mean": latency})


@pytest.fixture
def results() -> Results:
    return Results(
        label="candidate",
        experiment=ExperimentInfo(name="api-stress", path="experiments/api-stress.toml",
                                  sha256="ab" * 32, variables={"db": "worker"}),
        environment={"platform": "linux", "cpu_count": 2},
        rounds=(make_round(0), make_round(1)),
        created_at="2026-11-30T00:00:00Z",
    )
