"""The coverage gate: this build's combined coverage against main's, with per-file changes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import ExitCode, HarnessError
from harness.files import atomic_write_json

# Coverage percentages are floats computed from integer counts; a "drop" this small is rounding.
_EPSILON = 1e-9


@dataclass(frozen=True)
class FileChange:
    """One changed file's coverage in the baseline and now (None: not measured there)."""

    path: str
    baseline: float | None
    current: float | None

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass(frozen=True)
class GateResult:
    """The gate's decision; `status` is pass, drop or no-baseline."""

    status: str
    current: float
    baseline: float | None
    tolerance: float
    files: tuple[FileChange, ...]
    notes: tuple[str, ...]

    @property
    def change(self) -> float | None:
        return None if self.baseline is None else self.current - self.baseline

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["change"] = self.change
        data["files"] = [{**asdict(f), "change": f.change} for f in self.files]
        data["notes"] = list(self.notes)
        return data


def load_coverage(path: Path) -> dict[str, Any]:
    """Read a `coverage json` report and check it has the totals the gate needs."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise HarnessError(f"{path}: no such coverage report; run `tox -e coverage` first, "
                           f"which writes coverage.json.") from exc
    except ValueError as exc:
        raise HarnessError(f"{path}: not valid JSON ({exc}); regenerate it with "
                           f"`coverage json`.") from exc
    if not isinstance(data, dict) or "percent_covered" not in data.get("totals", {}):
        raise HarnessError(f"{path}: no totals.percent_covered; this is not a report written "
                           f"by `coverage json` (coverage 5 or newer).")
    return data


def _file_percent(report: dict[str, Any], wanted: str) -> float | None:
    wanted = wanted.replace("\\", "/").lstrip("./")
    for name, entry in report.get("files", {}).items():
        name = name.replace("\\", "/")
        if name == wanted or name.endswith("/" + wanted):
            return float(entry["summary"]["percent_covered"])
    return None


def evaluate(current: dict[str, Any], baseline: dict[str, Any] | None, *, tolerance: float,
             changed_files: Sequence[str] = ()) -> GateResult:
    """Compare totals (percentage points) and list the changed Python files' coverage."""
    now = float(current["totals"]["percent_covered"])
    files = tuple(
        FileChange(path, _file_percent(baseline, path) if baseline else None,
                   _file_percent(current, path))
        for path in changed_files if path.endswith(".py")
    )
    if baseline is None:
        return GateResult("no-baseline", now, None, tolerance, files,
                          ("no baseline coverage report: the gate passes; main's next build "
                           "archives one",))
    before = float(baseline["totals"]["percent_covered"])
    dropped = before - now > tolerance + _EPSILON
    note = (f"total coverage {now:.2f}% vs {before:.2f}% on main "
            f"({now - before:+.2f} points, tolerance {tolerance:.2f})")
    return GateResult("drop" if dropped else "pass", now, before, tolerance, files, (note,))


def render(result: GateResult) -> str:
    """The gate's result as a few lines of text for the build log."""
    head = {"pass": "coverage gate: pass", "drop": "coverage gate: FAILED, coverage dropped",
            "no-baseline": "coverage gate: pass (no baseline)"}[result.status]
    lines = [head, *(f"  {n}" for n in result.notes)]
    for f in result.files:
        before = "-" if f.baseline is None else f"{f.baseline:.1f}%"
        now = "not measured" if f.current is None else f"{f.current:.1f}%"
        lines.append(f"  {f.path}: {before} -> {now}")
    return "\n".join(lines)


def coverage_gate(*, current: Path, baseline: Path | None, tolerance: float,
                  changed_files: Sequence[str] | None, out: Path | None) -> int:
    """Run the gate; exit 0 pass (also without a baseline), 2 when coverage dropped."""
    if tolerance < 0:
        raise HarnessError(f"--tolerance {tolerance}: must be 0 or more percentage points.")
    base = load_coverage(baseline) if baseline is not None and Path(baseline).exists() else None
    result = evaluate(load_coverage(current), base, tolerance=tolerance,
                      changed_files=changed_files or ())
    if out is not None:
        atomic_write_json(Path(out), result.to_json())
    print(render(result))
    return int(ExitCode.REGRESSION if result.status == "drop" else ExitCode.OK)
