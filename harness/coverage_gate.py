"""The coverage gate: this build's combined coverage against main's, with per-file changes."""

from __future__ import annotations

import json
import math
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
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path}: cannot be read ({exc}); regenerate it with "
                           f"`coverage json`.") from exc
    except ValueError as exc:
        raise HarnessError(f"{path}: not valid JSON ({exc}); regenerate it with "
                           f"`coverage json`.") from exc
    totals = data.get("totals") if isinstance(data, dict) else None
    if not isinstance(totals, dict) or "percent_covered" not in totals:
        raise HarnessError(f"{path}: no totals.percent_covered; this is not a report written "
                           f"by `coverage json` (coverage 5 or newer).")
    percent(totals["percent_covered"], f"{path}: totals.percent_covered")
    files = data.get("files", {})
    if not isinstance(files, dict):
        raise HarnessError(f"{path}: `files` is not a table; regenerate it with `coverage json`.")
    for name, entry in files.items():
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(summary, dict):
            raise HarnessError(f"{path}: files.{name} has no summary; regenerate it with "
                               f"`coverage json`.")
        percent(summary.get("percent_covered"), f"{path}: files.{name}.summary.percent_covered")
    return data


def percent(value: Any, where: str) -> float:
    """A coverage percentage: a finite number from 0 to 100, else an error naming `where`.

    A string ("85.5"), NaN or infinity means the report was not written by `coverage json`
    or was edited; reading it as a number would let a broken report pass the gate.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HarnessError(f"{where} is {value!r}, not a number; regenerate the report with "
                           f"`coverage json`.")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 100.0:
        raise HarnessError(f"{where} is {value!r}; a coverage percentage is a number from 0 "
                           f"to 100. Regenerate the report with `coverage json`.")
    return number


def _file_percent(report: dict[str, Any], wanted: str) -> float | None:
    wanted = wanted.replace("\\", "/").lstrip("./")
    for name, entry in report.get("files", {}).items():
        name = name.replace("\\", "/")
        if name == wanted or name.endswith("/" + wanted):
            return percent(entry["summary"]["percent_covered"], f"files.{name}")
    return None


def evaluate(current: dict[str, Any], baseline: dict[str, Any] | None, *, tolerance: float,
             changed_files: Sequence[str] = (), no_baseline_note: str | None = None,
             ) -> GateResult:
    """Compare totals (percentage points) and list the changed Python files' coverage."""
    now = percent(current["totals"]["percent_covered"], "current totals.percent_covered")
    files = tuple(
        FileChange(path, _file_percent(baseline, path) if baseline else None,
                   _file_percent(current, path))
        for path in changed_files if path.endswith(".py")
    )
    if baseline is None:
        return GateResult("no-baseline", now, None, tolerance, files,
                          (no_baseline_note or "no baseline coverage report: the gate passes; "
                           "the next nightly archives one",))
    before = percent(baseline["totals"]["percent_covered"], "baseline totals.percent_covered")
    dropped = before - now > tolerance + _EPSILON
    change = now - before
    # A drop of a few thousandths would print as "-0.00": show the digits that matter.
    shown = f"{change:+.2f}" if change == 0 or abs(change) >= 0.01 else f"{change:+.4f}"
    note = (f"total coverage {now:.2f}% vs {before:.2f}% on main "
            f"({shown} points, tolerance {tolerance:.2f})")
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


def _absent_baseline_note(baseline: Path | None) -> str:
    """Why there is no baseline file: the fetch's record beside it says, when there is one."""
    from harness.baseline import load_record

    if baseline is None:
        return "no --baseline given: the gate passes (--allow-no-baseline)"
    try:
        record = load_record(Path(baseline))
    except (ValueError, TypeError, OSError):
        record = None
    reason = record.summary if record is not None else f"{baseline} does not exist"
    return f"{reason}: the gate passes (--allow-no-baseline)"


def coverage_gate(*, current: Path, baseline: Path | None, tolerance: float,
                  changed_files: Sequence[str] | None, out: Path | None,
                  allow_no_baseline: bool = False) -> int:
    """Run the gate; exit 0 pass, 2 when coverage dropped.

    Fails closed: without a baseline file the gate is an error (exit 1), unless
    `allow_no_baseline` says that "no baseline yet" is expected (the nightly has not archived a
    coverage.json); an unreadable baseline is an error either way.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise HarnessError(f"--tolerance {tolerance}: must be 0 or more percentage points.")
    report = load_coverage(current)
    note = None
    if baseline is not None and Path(baseline).exists():
        base: dict[str, Any] | None = load_coverage(baseline)
    elif allow_no_baseline:
        base, note = None, _absent_baseline_note(baseline)
    elif baseline is None:
        raise HarnessError("no --baseline: give main's coverage.json, or pass "
                           "--allow-no-baseline when there is none yet.")
    else:
        raise HarnessError(f"{baseline}: no such baseline coverage report; fetch it first "
                           f"(`tox -e coverage-baseline`), or pass --allow-no-baseline when "
                           f"the nightly has not archived one yet.")
    result = evaluate(report, base, tolerance=tolerance, changed_files=changed_files or (),
                      no_baseline_note=note)
    if out is not None:
        atomic_write_json(Path(out), result.to_json())
    print(render(result))
    return int(ExitCode.REGRESSION if result.status == "drop" else ExitCode.OK)
