"""Zero-code probes for unmodified Python subjects: SQLite query breakdown and event-loop lag.

Contract with the runner (harness.runner) and the report (harness.report):

* `probe_environment(...)` returns the subject's environment with the startup hook injected,
  plus warnings when injection is not possible (the subject then runs unprobed).
* `collect_probe_data(data_dir)` reads what the probes wrote, as JSON for `Round.probes`:

      probes["sqlite"] = {
          "operations": {"execute": {"calls", "total", "max", "min", "rows"}, ...},
          "statements": [{"statement", "operation", "calls", "total", "max", "min", "rows",
                          "callers": [{"where": "file:line function", "calls", "total"}]}],
      }
      probes["loop_lag"] = {"kind": "asyncio" | "twisted", "interval": 0.1,
                            "samples": [lateness in seconds, ...]}

  Times are seconds; "avg" is derived (total / calls) where shown.
* `probe_metrics(probes, requests)` turns that into summary metrics (queries_per_request, ...).
* `breakdown_details(baseline, candidate)` returns `Comparison.details` entries:

      details["queries"] = {
          "baseline": [statement rows as above, aggregated over the side's rounds, per round],
          "candidate": [...],
          "changes": [{"statement", "operation", "baseline_total", "candidate_total",
                       "total_change", "baseline_calls", "candidate_calls", "calls_change",
                       "top_caller"}], ranked by |total_change| then |calls_change|,
          "caller_changes": [{"where", "baseline_total", "candidate_total", "total_change",
                              "baseline_calls", "candidate_calls", "calls_change"}], ranked,
      }
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.experiment import Probes
from harness.results import Results


def probe_environment(
    probes: Probes, *, data_dir: Path, base_env: dict[str, str], is_python: bool
) -> tuple[dict[str, str], list[str]]:
    """The subject's environment with probes injected, and warnings (placeholder)."""
    del probes, data_dir, is_python
    return dict(base_env), []


def collect_probe_data(data_dir: Path) -> dict[str, Any]:
    """What the probes wrote under `data_dir`, as JSON for Round.probes (placeholder)."""
    del data_dir
    return {}


def probe_metrics(probes: dict[str, Any], requests: int) -> dict[str, float | None]:
    """Summary metrics from one round's probe data (placeholder)."""
    del probes, requests
    return {}


def breakdown_details(baseline: Results, candidate: Results) -> dict[str, Any]:
    """Comparison.details entries from the probes' data (placeholder)."""
    del baseline, candidate
    return {}
