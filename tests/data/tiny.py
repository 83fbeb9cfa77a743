"""Builders for the runner's tests: the tiny aiohttp subject and experiments around it."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from harness.experiment import (
    Endpoint,
    Experiment,
    Probes,
    Readiness,
    Rounds,
    ScenarioLine,
    SetupCommand,
    Subject,
    Workload,
)

APP = Path(__file__).with_name("tiny_app.py")


def tiny_subject(mode: str = "normal", *, instances: int = 1, timeout: float = 20.0,
                 ready: Readiness | None = None, setup: tuple[SetupCommand, ...] = (),
                 stop_timeout: float = 2.0) -> Subject:
    return Subject(
        command=("{python}", str(APP), "--port", "{port}", "--state-dir", "{state_dir}",
                 "--mode", mode),
        env={"TINY_PEERS": "{peers}"},
        setup=setup,
        instances=instances,
        ready=ready or Readiness(http="/health", timeout=timeout),
        stop_timeout=stop_timeout,
    )


def tiny_workload(**changes) -> Workload:
    values = dict(endpoints=(Endpoint("/hello", "hello"),), rates=(100.0,), requests=100,
                  warmup=0.2, max_lag=0.5)
    values.update(changes)
    return Workload(**values)


def tiny_experiment(subject: Subject | None = None, workload: Workload | None = None,
                    scenario: tuple[ScenarioLine, ...] = (), resources: bool = True,
                    no_workload: bool = False) -> Experiment:
    return Experiment(
        name="tiny", path="tests/data/tiny.toml", sha256="cd" * 32, description="tiny app",
        subject=subject or tiny_subject(),
        workload=None if no_workload else (workload or tiny_workload()),
        probes=Probes(resources=resources, resource_interval=0.1),
        rounds=Rounds(count=1), metrics={}, variables={"db": "none"}, scenario=scenario,
    )


def line(time: float | None, call: str, *args: str, instances=None) -> ScenarioLine:
    return ScenarioLine(time=time, callable=call, args=args, instances=instances,
                        source=f"tiny.scenario:{call}")


def tiny_processes() -> list[psutil.Process]:
    """Processes running the tiny app or its spawned child (orphan check)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if str(APP) in cmdline or ("while True: time.sleep(0.1)" in cmdline
                                   and proc.pid != psutil.Process().pid):
            found.append(proc)
    return found


PYTHON = sys.executable


@pytest.fixture(autouse=True)
def no_orphans():
    """Fail a test that leaves a tiny subject running (and kill what it left)."""
    yield
    leftover = tiny_processes()
    for proc in leftover:
        proc.kill()
    assert not leftover, f"processes left running: {leftover}"
