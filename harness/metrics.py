"""The declared metrics: what each is, how it is compared, and how a round's summary computes it.

Every metric a summary may hold is declared once here with its kind (`timing`: noisy, judged by a
rank test on round values; `counter`: nearly deterministic, judged from one round by a relative
threshold), which direction is better, its unit, and whether it gates the build by default.
Experiments override `gate` and `min_change` per metric ([metrics.NAME] in the TOML).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.results import REQUEST_COLUMNS, RequestLog, ResourceSeries
from harness.stats import mean, percentile, stdev

Kind = Literal["timing", "counter"]
Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Metric:
    """One declared metric."""

    name: str
    label: str
    unit: str  # "s", "B", "B/s", "KB/s", "1/s", "count", "instr", "s/req"
    kind: Kind
    better: Better
    gate: bool  # gates the build unless the experiment says otherwise
    min_change: float  # smallest relative change that matters (0.10 = 10%)
    description: str
    floor: float = 0.0  # a counter change smaller than this, in its unit, is never a change


def _m(name, label, unit, kind, better, gate, min_change, description, floor=0.0) -> Metric:
    return Metric(name, label, unit, kind, better, gate, min_change, description, floor)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        # counters first: the most reliable evidence (DESIGN.md section 8)
        _m("errors", "errors", "count", "counter", "lower", True, 0.0,
           "requests that failed or returned a status >= 400"),
        _m("response_bytes_per_request", "response bytes / request", "B", "counter", "lower",
           False, 0.01, "mean response body size", 0.5),
        # every byte the subject passed to write (responses, logs, database): shown, not gated by
        # default, so a new log line does not fail the build; database I/O gates instead
        # (db_write_bytes_per_request, file probe)
        _m("write_chars_per_request", "bytes passed to write / request", "B", "counter", "lower",
           False, 0.01, "bytes passed to write calls by the subject per request (Linux wchar)",
           0.5),
        _m("read_chars_per_request", "bytes passed to read / request", "B", "counter", "lower",
           False, 0.01, "bytes passed to read calls by the subject per request (Linux rchar)",
           0.5),
        _m("write_bytes_per_request", "bytes written / request", "B", "counter", "lower",
           False, 0.02, "bytes written to storage per request", 0.5),
        _m("read_bytes_per_request", "bytes read / request", "B", "counter", "lower",
           False, 0.02, "bytes read from storage per request", 0.5),
        _m("write_bytes_per_hour", "bytes written / hour", "B", "counter", "lower",
           False, 0.02, "bytes written to storage per hour of run time (the thesis' MB/hour)",
           65536.0),
        _m("read_bytes_per_hour", "bytes read / hour", "B", "counter", "lower",
           False, 0.02, "bytes read from storage per hour of run time", 65536.0),
        _m("write_chars_per_hour", "bytes passed to write / hour", "B", "counter", "lower",
           False, 0.01, "bytes passed to write calls per hour of run time", 65536.0),
        _m("queries_per_request", "queries / request", "count", "counter", "lower",
           True, 0.01, "SQLite statements executed per request (query probe)", 0.01),
        _m("query_rows_per_request", "rows / request", "count", "counter", "lower",
           False, 0.01, "rows fetched per request (query probe)", 0.01),
        _m("queries_total", "queries", "count", "counter", "lower",
           False, 0.01, "SQLite statements executed in the round (query probe)", 0.5),
        # blocking on the event-loop thread (blocking probe): exact counts, not timing
        _m("loop_queries_per_request", "queries on the loop / request", "count", "counter",
           "lower", False, 0.01, "SQLite statements run on the event-loop thread per request",
           0.01),
        _m("loop_blocking_calls_per_request", "blocking calls on the loop / request", "count",
           "counter", "lower", False, 0.01, "SQLite statements, file reads/writes, sleeps, "
           "blocking socket calls and subprocess runs on the event-loop thread per request",
           0.01),
        _m("loop_file_bytes_per_request", "file bytes on the loop / request", "B", "counter",
           "lower", False, 0.01, "bytes read and written through files on the event-loop thread",
           0.5),
        # where the bytes went (file probe)
        _m("db_write_bytes_per_request", "database writes / request", "B", "counter", "lower",
           True, 0.02, "bytes SQLite wrote (database, journal, WAL) per request (file probe)",
           0.5),
        _m("log_write_bytes_per_request", "log writes / request", "B", "counter", "lower",
           False, 0.05, "bytes written to log files per request (file probe)", 0.5),
        _m("state_write_bytes_per_request", "state-file writes / request", "B", "counter",
           "lower", False, 0.05, "bytes written to other files under the state directory", 0.5),
        _m("other_write_bytes_per_request", "other file writes / request", "B", "counter",
           "lower", False, 0.05, "bytes written to files elsewhere per request (file probe)",
           0.5),
        _m("file_read_bytes_per_request", "file reads / request", "B", "counter", "lower",
           False, 0.05, "bytes read through Python file objects per request (file probe)", 0.5),
        _m("instructions_per_request", "instructions / request", "instr", "counter", "lower",
           True, 0.01, "instructions per request under valgrind (instruction tier)", 100.0),
        # timing: noisy, judged on round values
        _m("latency_mean", "average", "s", "timing", "lower", True, 0.10,
           "mean response time from the intended send time"),
        _m("latency_min", "minimum", "s", "timing", "lower", False, 0.10, "fastest response"),
        _m("latency_max", "maximum", "s", "timing", "lower", False, 0.25, "slowest response"),
        _m("latency_std", "std deviation", "s", "timing", "lower", False, 0.25,
           "standard deviation of response times"),
        _m("latency_p50", "p50", "s", "timing", "lower", False, 0.10, "median response time"),
        _m("latency_p90", "p90", "s", "timing", "lower", False, 0.15, "90th percentile"),
        _m("latency_p95", "p95", "s", "timing", "lower", False, 0.20, "95th percentile"),
        _m("latency_p99", "p99", "s", "timing", "lower", False, 0.25, "99th percentile"),
        _m("latency_p999", "p99.9", "s", "timing", "lower", False, 0.30, "99.9th percentile"),
        _m("service_mean", "average from actual send", "s", "timing", "lower", False, 0.10,
           "mean response time from the actual send time"),
        _m("throughput_kbps", "throughput", "KB/s", "timing", "higher", False, 0.10,
           "response bytes received per second"),
        _m("responses_per_s", "responses / s", "1/s", "timing", "higher", False, 0.05,
           "successful responses per second of the round (set by the open-loop driver's rate: "
           "shown, never timing evidence; a subject that cannot keep up is an overload verdict)"),
        _m("cpu_seconds", "CPU time", "s", "timing", "lower", False, 0.10,
           "user + system CPU seconds of the subject's process tree"),
        _m("cpu_per_request", "CPU / request", "s", "timing", "lower", True, 0.10,
           "user + system CPU seconds per request"),
        _m("rss_max", "memory (max RSS)", "B", "timing", "lower", False, 0.10,
           "largest resident set size of the process tree"),
        _m("loop_blocking_max", "longest blocking call on the loop", "s", "timing", "lower",
           False, 0.50, "the longest single blocking call on the event-loop thread"),
        _m("loop_lag_mean", "loop lag mean", "s", "timing", "lower", False, 0.20,
           "mean lateness of a callback scheduled on the subject's event loop (lag probe)"),
        _m("loop_lag_p99", "loop lag p99", "s", "timing", "lower", False, 0.30,
           "99th percentile of event-loop lateness (lag probe)"),
        _m("loop_lag_max", "loop lag max", "s", "timing", "lower", False, 0.50,
           "largest event-loop lateness (lag probe)"),
    )
}


def request_metrics(log: RequestLog, duration: float) -> dict[str, float | None]:
    """Summaries of one round's requests: response times, throughput, errors."""
    pairs = enumerate(zip(log.status, log.error, strict=True))
    ok = [i for i, (s, e) in pairs if e is None and 0 < s < 400]
    lat = [log.latency[i] for i in ok]
    out: dict[str, float | None] = {"errors": float(len(log) - len(ok))}
    if lat:
        out.update(
            latency_mean=mean(lat),
            latency_min=min(lat),
            latency_max=max(lat),
            latency_std=stdev(lat),
            latency_p50=percentile(lat, 50),
            latency_p90=percentile(lat, 90),
            latency_p95=percentile(lat, 95),
            latency_p99=percentile(lat, 99),
            latency_p999=percentile(lat, 99.9),
            service_mean=mean([log.service[i] for i in ok]),
            response_bytes_per_request=mean([float(log.nbytes[i]) for i in ok]),
        )
    if duration > 0 and len(log):
        out["responses_per_s"] = len(ok) / duration
        out["throughput_kbps"] = sum(log.nbytes[i] for i in ok) / 1024.0 / duration
    return out


def _delta(series: ResourceSeries, column: str) -> float | None:
    values = series.columns.get(column)
    if not values or column in series.unavailable:
        return None
    return float(values[-1]) - float(values[0])


def resource_metrics(
    series: ResourceSeries | None, requests: int, duration: float
) -> dict[str, float | None]:
    """Summaries of one round's resource samples: CPU, memory, I/O totals per request and hour."""
    if series is None or not series.t:
        return {}
    out: dict[str, float | None] = {}
    user, system = _delta(series, "cpu_user"), _delta(series, "cpu_system")
    if user is not None and system is not None:
        out["cpu_seconds"] = user + system
        out["cpu_per_request"] = (user + system) / requests if requests else None
    rss = series.columns.get("rss")
    if rss:
        out["rss_max"] = float(max(rss))
    for column in ("write_chars", "read_chars", "write_bytes", "read_bytes"):
        total = _delta(series, column)
        out[f"{column}_per_request"] = total / requests if total is not None and requests else None
        if column != "read_chars":
            per_hour = total * 3600.0 / duration if total is not None and duration > 0 else None
            out[f"{column}_per_hour"] = per_hour
    return {k: v for k, v in out.items() if k in METRICS}


# Metrics summarised for each endpoint of a mixed workload as well as for the mix. Latency and
# errors are measured per request; cpu_per_request is attributed (see endpoint_metrics);
# queries_per_request needs probe data that names endpoints.
ENDPOINT_METRICS = (
    "errors", "response_bytes_per_request", "latency_mean", "latency_p50", "latency_p95",
    "latency_p99", "cpu_per_request", "queries_per_request",
)


# Counted per endpoint by the instruction tier's Python profile run, with the experiment's
# counting probes (sqlite, blocking, files) in the same process (harness.pyfunctions): exact
# counts per request of each endpoint's own fixed request sequence.
PROFILE_ENDPOINT_METRICS = (
    "queries_per_request", "query_rows_per_request", "loop_queries_per_request",
    "loop_blocking_calls_per_request", "loop_file_bytes_per_request",
    "db_write_bytes_per_request", "log_write_bytes_per_request", "state_write_bytes_per_request",
    "other_write_bytes_per_request", "file_read_bytes_per_request",
)


def _endpoint_queries(probes: dict[str, Any], name: str) -> float | None:
    """Statements the query probe counted for one endpoint, when its data names endpoints.

    The expected shape is probes["sqlite"]["endpoints"][name] = {"queries": count, ...}.
    """
    entry = ((probes.get("sqlite") or {}).get("endpoints") or {}).get(name)
    value = entry.get("queries") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def endpoint_metrics(
    log: RequestLog, cpu_seconds: float | None, probes: dict[str, Any] | None = None
) -> dict[str, dict[str, float | None]]:
    """Per-endpoint summaries of one round, when the workload mixed two or more endpoints.

    Latency percentiles, errors and response bytes come from each endpoint's own requests.
    CPU cannot be measured per request from outside the process, so `cpu_per_request` is the
    round's CPU time shared out in proportion to service time (actual send to response): an
    endpoint whose requests took 70% of the summed service time is charged 70% of the CPU. It
    is an estimate that assumes CPU use follows time in service; it is not gated by default.
    """
    names = sorted(set(log.endpoint))
    if len(names) < 2:
        return {}
    service_total = sum(s for s in log.service if s > 0)
    out: dict[str, dict[str, float | None]] = {}
    for name in names:
        idx = [i for i, e in enumerate(log.endpoint) if e == name]
        own = RequestLog(**{c: tuple(getattr(log, c)[i] for i in idx) for c in REQUEST_COLUMNS})
        summary = {k: v for k, v in request_metrics(own, 0.0).items() if k in ENDPOINT_METRICS}
        share = sum(s for s in own.service if s > 0)
        if cpu_seconds is not None and service_total > 0:
            summary["cpu_per_request"] = cpu_seconds * share / service_total / len(idx)
        queries = _endpoint_queries(probes or {}, name)
        if queries is not None:
            summary["queries_per_request"] = queries / len(idx)
        out[name] = summary
    return out
