"""Experiment definitions: the TOML schema as frozen dataclasses, loaded and validated in one place.

The TOML format is documented in docs/experiments.md. Durations are seconds, rates requests/s,
after unit parsing (harness.units). Placeholders in commands: {python} (the interpreter running
the harness, or the baseline environment's), {port}, {state_dir}, {instance} (1-based),
{peers} (host:port of the other instances, comma-separated), {out_dir}, and every [variables] key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class SetupCommand:
    """A command run before the subject starts (e.g. seeding), for some or all instances."""

    command: tuple[str, ...]
    instances: tuple[int, ...] | None = None  # None: every instance
    timeout: float = 600.0


@dataclass(frozen=True)
class Readiness:
    """How to tell the subject is ready: an HTTP path answering 2xx, or a log line regex."""

    http: str | None = "/health"
    log: str | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class Subject:
    """The program under test and how to start, prepare and stop it."""

    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None  # relative to the project root; None: the project root
    setup: tuple[SetupCommand, ...] = ()
    instances: int = 1
    ready: Readiness = field(default_factory=Readiness)
    stop_timeout: float = 10.0
    python: bool | None = None  # None: detect (command starts with {python} or a python binary)


@dataclass(frozen=True)
class Endpoint:
    """One request the workload sends, with its share of the traffic."""

    path: str
    name: str
    method: str = "GET"
    weight: float = 1.0
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """The fixed-rate (open-loop) workload driven against one instance."""

    endpoints: tuple[Endpoint, ...]
    rates: tuple[float, ...]  # one rate, or a sweep: one step per rate
    arrival: Literal["constant", "poisson"] = "constant"
    requests: int | None = 1000  # per step; exactly one of requests and duration
    duration: float | None = None
    warmup: float = 2.0  # seconds of load before measuring (discarded)
    timeout: float = 10.0  # per request
    max_lag: float = 0.05  # driver lateness (p99 schedule lag) beyond which a run is invalid
    max_error_rate: float = 0.01  # subject errors above this fraction make the run invalid
    instance: int = 1  # which instance receives the load
    connections: int | None = None  # None: sized from the rate
    driver: Literal["harness", "jmeter"] = "harness"
    seed: int = 0  # for Poisson arrivals and endpoint choice


@dataclass(frozen=True)
class Probes:
    """Which probes run and how often they sample."""

    resources: bool = True
    resource_interval: float = 0.5
    sqlite: bool = False
    loop_lag: bool = False
    loop_lag_interval: float = 0.1
    flush_interval: float = 1.0


@dataclass(frozen=True)
class MetricPolicy:
    """An experiment's override of a declared metric (harness.metrics.METRICS)."""

    gate: bool | None = None
    min_change: float | None = None


@dataclass(frozen=True)
class Rounds:
    """How many rounds `harness run` and `harness perf` do."""

    count: int = 1  # rounds per side for `harness run`
    perf_min: int = 5  # rounds per side before `harness perf` judges (5 is the least for p < 0.01)
    perf_budget: float = 300.0  # seconds `harness perf` may spend adding rounds when inconclusive


@dataclass(frozen=True)
class InstructionTier:
    """The valgrind instruction-count tier (harness.instructions)."""

    enabled: bool = False
    tool: Literal["cachegrind", "callgrind"] = "cachegrind"
    requests: int = 50  # fixed closed-loop sequence length per endpoint
    min_change: float = 0.01


@dataclass(frozen=True)
class ScenarioLine:
    """One timed line of a Gumby scenario: at `time` seconds, `instances` call `callable`."""

    time: float | None  # None for `@!` (run at once, when reached)
    callable: str
    args: tuple[str, ...]
    instances: tuple[int, ...] | None  # None: all instances
    source: str  # "file:line" for messages


@dataclass(frozen=True)
class Experiment:
    """A validated experiment definition."""

    name: str
    path: str
    sha256: str  # of the TOML text and the scenario text, as read
    description: str
    subject: Subject
    workload: Workload | None
    probes: Probes
    rounds: Rounds
    metrics: dict[str, MetricPolicy]
    variables: dict[str, str]
    scenario: tuple[ScenarioLine, ...] = ()
    instructions: InstructionTier = field(default_factory=InstructionTier)
