"""The results model (results.json): rounds with raw samples and summaries, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ResultsFormatError
from harness.files import atomic_write_json

# format_version history:
#   1 (harness 0.1.0): first version.
#   2 (harness 0.2.0): optional additions only (per-endpoint summaries, per-side subject
#     environment, stop records, calibration, error classes); version 1 files still load, the
#     absent parts read as absent.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

REQUEST_COLUMNS = (
    "endpoint", "intended", "sent", "latency", "service", "status", "nbytes", "error",
)
RESOURCE_COLUMNS = (
    "cpu_user",  # cumulative CPU seconds in user mode of the process tree
    "cpu_system",  # cumulative CPU seconds in kernel mode
    "rss",  # resident memory in bytes, summed over the tree
    "read_bytes",  # cumulative bytes read from storage
    "write_bytes",  # cumulative bytes written to storage
    "read_chars",  # cumulative bytes passed to read calls (Linux rchar)
    "write_chars",  # cumulative bytes passed to write calls (Linux wchar)
    "threads",  # threads in the tree
    "ctx_switches",  # cumulative voluntary + involuntary context switches
)


@dataclass(frozen=True)
class RequestLog:
    """Per-request samples of one round, stored as columns of equal length.

    Times are seconds since the round's workload started. `latency` is measured from the intended
    send time (so a late send cannot hide a slow server: no coordinated omission); `service` from
    the actual send time. `status` is 0 when no response arrived; `error` is None on success.
    """

    endpoint: tuple[str, ...] = ()
    intended: tuple[float, ...] = ()
    sent: tuple[float, ...] = ()
    latency: tuple[float, ...] = ()
    service: tuple[float, ...] = ()
    status: tuple[int, ...] = ()
    nbytes: tuple[int, ...] = ()
    error: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        lengths = {name: len(getattr(self, name)) for name in REQUEST_COLUMNS}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"request columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.intended)

    def to_json(self) -> dict[str, list[Any]]:
        return {name: list(getattr(self, name)) for name in REQUEST_COLUMNS}

    @classmethod
    def from_json(cls, data: dict[str, list[Any]]) -> RequestLog:
        return cls(**{name: tuple(data.get(name, ())) for name in REQUEST_COLUMNS})


@dataclass(frozen=True)
class ResourceSeries:
    """Resource samples of one instance's process tree, one row per sampling tick.

    `t` is seconds since the round's workload started. Each column in RESOURCE_COLUMNS is either a
    tuple as long as `t`, or absent and named in `unavailable` (the platform has no such probe:
    recorded as unavailable, never as zero).
    """

    interval: float
    t: tuple[float, ...] = ()
    columns: dict[str, tuple[float, ...]] = field(default_factory=dict)
    unavailable: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "t": list(self.t),
            "columns": {k: list(v) for k, v in sorted(self.columns.items())},
            "unavailable": list(self.unavailable),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceSeries:
        return cls(
            interval=float(data["interval"]),
            t=tuple(data.get("t", ())),
            columns={k: tuple(v) for k, v in data.get("columns", {}).items()},
            unavailable=tuple(data.get("unavailable", ())),
        )


@dataclass(frozen=True)
class Round:
    """One round of one instance: a fresh subject start, one workload, its samples and summary.

    `side` is the label of the code measured ("baseline", "candidate", or `harness run --label`).
    `index` is the execution order within the session, so interleaving can be reconstructed.
    `step` is the rate (requests/s) of this rate-sweep step, or None without a sweep.
    `summary` maps metric names (harness.metrics.METRICS) to values; None where unavailable.
    `endpoints` holds the same kind of summary per endpoint of a mixed workload
    (harness.metrics.endpoint_metrics); empty (and absent from the JSON) with one endpoint.
    """

    index: int
    side: str
    instance: int
    step: float | None
    started_at: str
    duration: float
    valid: bool = True
    invalid_reason: str | None = None
    requests: RequestLog = field(default_factory=RequestLog)
    resources: ResourceSeries | None = None
    probes: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, float | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # optional (absent = not recorded): how the subject was stopped ({"step", "seconds",
    # "warning"}), the summaries per endpoint of a mixed workload, and the failed requests by
    # class ({"connect": 2, "reset": 1, ...})
    stop: dict[str, Any] | None = None
    endpoints: dict[str, dict[str, float | None]] = field(default_factory=dict)
    errors: dict[str, int] | None = None
    # optional: the machine-speed calibration timed around the measured window
    # (harness.calibration: {"before", "after", "steal", "frequency_mhz", "unavailable", ...})
    calibration: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = self._core_json()
        if self.stop is not None:
            out["stop"] = dict(self.stop)
        if self.errors is not None:
            out["errors"] = dict(self.errors)
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        if self.endpoints:  # absent means not measured per endpoint
            out["endpoints"] = {name: dict(sorted(values.items()))
                                for name, values in sorted(self.endpoints.items())}
        return out

    def _core_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "side": self.side,
            "instance": self.instance,
            "step": self.step,
            "started_at": self.started_at,
            "duration": self.duration,
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
            "requests": self.requests.to_json(),
            "resources": None if self.resources is None else self.resources.to_json(),
            "probes": self.probes,
            "summary": dict(sorted(self.summary.items())),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Round:
        resources = data.get("resources")
        return cls(
            index=int(data["index"]),
            side=str(data["side"]),
            instance=int(data["instance"]),
            step=data.get("step"),
            started_at=str(data["started_at"]),
            duration=float(data["duration"]),
            valid=bool(data.get("valid", True)),
            invalid_reason=data.get("invalid_reason"),
            requests=RequestLog.from_json(data.get("requests", {})),
            resources=None if resources is None else ResourceSeries.from_json(resources),
            probes=dict(data.get("probes", {})),
            summary=dict(data.get("summary", {})),
            warnings=tuple(data.get("warnings", ())),
            stop=dict(data["stop"]) if isinstance(data.get("stop"), dict) else None,
            errors=dict(data["errors"]) if isinstance(data.get("errors"), dict) else None,
            endpoints={str(k): dict(v) for k, v in (data.get("endpoints") or {}).items()},
            calibration=(dict(data["calibration"]) if isinstance(data.get("calibration"), dict)
                         else None),
        )


@dataclass(frozen=True)
class ExperimentInfo:
    """Which experiment produced the results: name, definition path, content hash, variables.

    `policies` holds the experiment's per-metric overrides ({"latency_mean": {"gate": true,
    "min_change": 0.1}}), so a comparison needs only the two results files.
    """

    name: str
    path: str
    sha256: str
    variables: dict[str, str] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExperimentInfo:
        return cls(
            name=str(data["name"]),
            path=str(data["path"]),
            sha256=str(data["sha256"]),
            variables=dict(data.get("variables", {})),
            policies=dict(data.get("policies", {})),
        )


@dataclass(frozen=True)
class Results:
    """Everything one side of a comparison measured, as written to results.json.

    `environment` holds the keys declared in harness.environment.METADATA. `instructions` holds the
    instruction-count tier's data when the experiment declares one (harness.instructions),
    else None.
    """

    label: str
    experiment: ExperimentInfo
    environment: dict[str, Any]
    rounds: tuple[Round, ...]
    created_at: str
    warnings: tuple[str, ...] = ()
    instructions: dict[str, Any] | None = None
    session: dict[str, Any] = field(default_factory=dict)  # e.g. interleaving order and seed

    @property
    def valid(self) -> bool:
        return all(r.valid for r in self.rounds)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "label": self.label,
            "experiment": self.experiment.to_json(),
            "environment": dict(sorted(self.environment.items())),
            "rounds": [r.to_json() for r in self.rounds],
            "created_at": self.created_at,
            "warnings": list(self.warnings),
            "instructions": self.instructions,
            "session": self.session,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "results.json") -> Results:
        version = data.get("format_version") if isinstance(data, dict) else None
        if version not in READABLE_VERSIONS:
            raise ResultsFormatError(
                f"{source}: format_version is {version!r}, but this harness reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}. Re-run the experiment with this "
                f"harness version, or compare it with the harness version that wrote it."
            )
        try:
            return cls(
                label=str(data["label"]),
                experiment=ExperimentInfo.from_json(data["experiment"]),
                environment=dict(data["environment"]),
                rounds=tuple(Round.from_json(r) for r in data["rounds"]),
                created_at=str(data["created_at"]),
                warnings=tuple(data.get("warnings", ())),
                instructions=data.get("instructions"),
                session=dict(data.get("session", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsFormatError(
                f"{source}: not a complete results file ({type(exc).__name__}: {exc}). "
                f"It may be truncated or hand-edited; re-run the experiment to produce it again."
            ) from exc


def save_results(results: Results, path: Path) -> None:
    """Write results.json atomically (temporary file + rename)."""
    atomic_write_json(Path(path), results.to_json())


def load_results(path: Path) -> Results:
    """Read results.json; refuse other format versions and damaged files with a clear message."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ResultsFormatError(
            f"{path}: no such results file. Pass the results.json written by `harness run`."
        ) from exc
    except OSError as exc:
        raise ResultsFormatError(f"{path}: cannot be read ({exc}).") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(
            f"{path}: line {exc.lineno}: not valid JSON ({exc.msg}). The file is damaged; "
            f"re-run the experiment to produce it again."
        ) from exc
    return Results.from_json(data, source=str(path))
