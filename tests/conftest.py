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


# -- optional system tools: skipped on a fresh machine, required in CI ---------------------------

# Debian package names of the tools some tests need (the same list as .ci/run's apt_packages).
SYSTEM_TOOLS = {"groovy": "groovy", "valgrind": "valgrind", "chromium": "chromium",
                "wrk": "wrk", "git": "git"}
_SKIPPED: dict[str, int] = {}


def _missing(tool: str) -> str | None:
    """Why `tool` cannot be used here, or None."""
    import shutil
    from pathlib import Path

    if tool == "valgrind":
        from harness import valgrind

        return valgrind.unavailable_reason()
    if tool == "chromium":
        found = shutil.which("chromium") or shutil.which("chromium-browser") or \
            Path("/usr/bin/chromium").exists()
        return None if found else "chromium is not installed"
    return None if shutil.which(tool) else f"{tool} is not installed"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "needs(tool): the test needs a system tool (Debian "
                                       "package); skipped without it, a failure with CI=true")


def pytest_runtest_setup(item) -> None:
    import os
    import sys

    for mark in item.iter_markers(name="needs"):
        for tool in mark.args:
            reason = _missing(tool)
            if reason is None:
                continue
            in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
            if in_ci and sys.platform.startswith("linux"):
                pytest.fail(f"{reason}, and CI=true: CI installs it (.ci/run's apt_packages)",
                            pytrace=False)
            _SKIPPED[tool] = _SKIPPED.get(tool, 0) + 1
            pytest.skip(reason)


def pytest_terminal_summary(terminalreporter) -> None:
    if _SKIPPED:
        tools = sorted(_SKIPPED)
        count = sum(_SKIPPED.values())
        packages = " ".join(SYSTEM_TOOLS.get(t, t) for t in tools)
        terminalreporter.write_line(
            f"{count} test(s) skipped for want of {', '.join(tools)}: install with "
            f"`sudo apt-get install {packages}` (Debian/Ubuntu; see README)")
