"""The Jenkins Performance plugin's input: one side's requests as a JMeter CSV results file.

Teams that keep the Performance plugin's trend charts point its `perfReport` step at these files
(`sourceDataFiles: 'perf-out/perf-plugin/*.csv'`). The plugin recognises a JMeter CSV by its header
line and reads the time stamp (ms since the epoch), elapsed time (ms), label, response code,
success flag and bytes of every sample; the columns here are JMeter's own names in its default
order. Each request of every round is one sample labelled with its endpoint; the thread name says
which round it came from. Times are the round's start plus the request's send offset.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

from harness.files import atomic_write_text
from harness.results import Results

COLUMNS = ("timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName",
           "success", "bytes", "Latency")


def _epoch(started_at: str) -> float:
    return datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()


def perf_plugin_csv(results: Results) -> str:
    """The CSV text for one side (header line included)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in results.rounds:
        log = r.requests
        start = _epoch(r.started_at)
        for i in range(len(log)):
            error, status = log.error[i], log.status[i]
            ok = error is None and 0 < status < 400
            elapsed = round(log.latency[i] * 1000)
            writer.writerow((
                round((start + log.sent[i]) * 1000), elapsed, log.endpoint[i], status or "",
                "OK" if ok else (error or f"HTTP {status}"), f"{results.label} round {r.index}",
                "true" if ok else "false", log.nbytes[i], round(log.service[i] * 1000)))
    return out.getvalue()


def write_perf_plugin_csvs(baseline: Results, candidate: Results, out_dir: Path) -> list[Path]:
    """Write OUT/baseline.csv and OUT/candidate.csv; return their paths."""
    written = []
    for name, results in (("baseline", baseline), ("candidate", candidate)):
        path = Path(out_dir) / f"{name}.csv"
        atomic_write_text(path, perf_plugin_csv(results))
        written.append(path)
    return written
