"""Zero-code probes for unmodified Python subjects: SQLite query breakdown, event-loop lag, blocking
calls on the loop and file bytes by kind (docs/probes.md). Which Python functions changed is
counted by harness/probes/pyprofile.py in a run of its own (harness.pyfunctions).

Contract with the runner (harness.runner) and the report (harness.report):

* `probe_environment(...)` returns the subject's environment with the startup hook injected,
  plus warnings when injection is not possible (the subject then runs unprobed).
* `collect_probe_data(data_dir)` reads what the probes wrote, as JSON for `Round.probes`:

      probes["sqlite"] = {
          "operations": {"execute": {"calls", "total", "max", "min", "rows"}, ...},
          "statements": [{"statement", "operation", "calls", "total", "max", "min", "rows",
                          "fetch_total", "loop_calls", "loop_total", "write_bytes",
                          "callers": [{"where": "file:line function", "via": "file:line function"
                                       or "", "calls", "total"}]}],
      }

  One row per statement: `operation` is execute, executemany, executescript, commit or rollback;
  the fetches of its rows add their time (`fetch_total`, included in `total`) and rows. `where`
  is the first frame of the project, `via` the library frame beside it (or, for work handed to
  another thread, the worker thread's frame). `loop_calls`/`loop_total`: the part run on the
  event-loop thread; `write_bytes`: what SQLite wrote meanwhile (files probe, Linux). Fields an
  older results.json lacks are absent, not 0.

      probes["blocking"] = {"kinds": {KIND: {"calls", "total", "max", "bytes"}},
                            "longest": {"kind", "seconds", "where", "via"} | None,
                            "sites": [{"kind", "where", "via", "calls", "total"}]}
      probes["files"] = {"files": [{"path", "kind", "read_bytes", "write_bytes", "reads",
                                    "writes"}],
                         "process": {"read_bytes", "write_bytes"} | None, "probe_bytes",
                         "database_measured"}
      probes["loop_lag"] = {"kind": "asyncio" | "twisted", "interval": 0.1,
                            "samples": [lateness in seconds, ...]}

  Times are seconds; "avg" is derived (total / calls) where shown. Operations are execute,
  executemany, executescript (queries), fetchone, fetchall, fetchmany, iterate (one pass of a
  `for row in cursor` loop), commit and rollback (statements "COMMIT" / "ROLLBACK").
  probes["warnings"] = [sentences] when injection failed or a probe could not install or write:
  the runner copies them into Round.warnings.
* `probe_metrics(probes, requests)` turns that into summary metrics (queries_per_request, ...).
* `breakdown_details(baseline, candidate)` returns `Comparison.details` entries:

      details["queries"] = {
          "baseline": [statement rows as above, aggregated over the side's rounds, per round],
          "candidate": [...],
          "changes": [{"statement", "operation", "baseline_total", "candidate_total",
                       "total_change", "baseline_calls", "candidate_calls", "calls_change",
                       "top_caller", "change": "same" | "added" | "removed" | "changed",
                       "baseline_statement" (only when "changed": the text it replaced)}],
                      ranked by |total_change| then |calls_change|,
          "caller_changes": [{"where", "baseline_total", "candidate_total", "total_change",
                              "baseline_calls", "candidate_calls", "calls_change"}], ranked,
          "baseline_rounds": n, "candidate_rounds": n,  # rounds with query data per side
      }
      details["loop_lag"] = {"baseline": {"kind", "interval", "samples"} | None, "candidate": ...}
      details["blocking"], details["files"]: see blocking_details and files_details in
      harness/probes/breakdown.py (per request; files has a "headline" such as "+25 B written
      per request, all in the log file core.log").

  Breakdown rows also carry "avg" (total / calls), the thesis' Table 6.4/6.5 column.
"""

from __future__ import annotations

from harness.probes.breakdown import breakdown_details
from harness.probes.inject import (
    collect_probe_data,
    flush_probes,
    injection_warning,
    is_python_command,
    mark_measuring,
    probe_environment,
)
from harness.probes.summary import probe_metrics

__all__ = ["breakdown_details", "collect_probe_data", "flush_probes", "injection_warning",
           "is_python_command",
           "mark_measuring",
           "probe_environment", "probe_metrics"]
