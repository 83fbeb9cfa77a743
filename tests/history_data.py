"""Synthetic nightly results for the history, change-point and nightly tests."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness.results import ExperimentInfo, Results, Round, save_results

START = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


def commit_id(night: int) -> str:
    return f"{night:04d}" + "c" * 36


def nightly(night: int, *, latency: float, instructions: float, rounds: int = 5,
            seed: int = 0, experiment: str = "api-quick") -> Results:
    """One nightly's results: `rounds` rounds around `latency`, one instruction-tier value."""
    rng = random.Random(seed * 1000 + night)
    made = tuple(
        Round(index=i, side="nightly", instance=1, step=None,
              started_at=(START + timedelta(days=night)).isoformat(), duration=10.0,
              summary={"latency_mean": latency * (1 + rng.gauss(0, 0.03)),
                       "latency_p99": latency * 3 * (1 + rng.gauss(0, 0.1)),
                       "errors": 0.0})
        for i in range(rounds))
    return Results(
        label="nightly",
        experiment=ExperimentInfo(name=experiment, path=f"experiments/{experiment}.toml",
                                  sha256="ab" * 32),
        environment={"platform": "linux", "subject_commit": commit_id(night),
                     "jenkins_build_url": f"http://jenkins.invalid/job/nightly/{100 + night}/"},
        rounds=made,
        created_at=(START + timedelta(days=night)).isoformat(timespec="seconds"),
        instructions={"tool": "cachegrind", "requests": 50, "min_change": 0.01,
                      "endpoints": {"channels": {"per_request": instructions}}},
    )


def write_nights(folder: Path, nights: range, *, step_at: int | None = None,
                 skip: tuple[int, ...] = ()) -> None:
    """Nightly results files; from night `step_at` on latency is +30% and instructions +5%."""
    for night in nights:
        if night in skip:
            continue
        after = step_at is not None and night >= step_at
        results = nightly(night, latency=0.0123 * (1.3 if after else 1.0),
                          instructions=2_000_000 * (1.05 if after else 1.0) + night % 3)
        save_results(results, folder / f"night-{night:02d}" / "results.json")
