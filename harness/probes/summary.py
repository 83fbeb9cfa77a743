"""Summary metrics of one round's probe data (names declared in harness.metrics.METRICS)."""

from __future__ import annotations

from typing import Any

from harness.probes.sqlite import FETCH_OPERATIONS, STATEMENT_OPERATIONS
from harness.stats import mean, percentile


def sqlite_metrics(sqlite: dict[str, Any], requests: int) -> dict[str, float | None]:
    operations = sqlite.get("operations", {})
    queries = float(sum(operations.get(op, {}).get("calls", 0) for op in STATEMENT_OPERATIONS))
    rows = float(sum(operations.get(op, {}).get("rows", 0) for op in FETCH_OPERATIONS))
    return {
        "queries_total": queries,
        "queries_per_request": queries / requests if requests else None,
        "query_rows_per_request": rows / requests if requests else None,
    }


def lag_metrics(loop_lag: dict[str, Any]) -> dict[str, float | None]:
    samples = [float(s) for s in loop_lag.get("samples", [])]
    if not samples:
        return {"loop_lag_mean": None, "loop_lag_p99": None, "loop_lag_max": None}
    return {
        "loop_lag_mean": mean(samples),
        "loop_lag_p99": percentile(samples, 99),
        "loop_lag_max": max(samples),
    }


def blocking_metrics(blocking: dict[str, Any], requests: int) -> dict[str, float | None]:
    kinds = blocking.get("kinds", {})
    calls = float(sum(k.get("calls", 0) for k in kinds.values()))
    file_bytes = float(sum(kinds.get(k, {}).get("bytes", 0) for k in ("file_read", "file_write")))
    longest = blocking.get("longest")
    per = (lambda value: value / requests) if requests else (lambda value: None)
    return {
        "loop_queries_per_request": per(float(kinds.get("sqlite", {}).get("calls", 0))),
        "loop_blocking_calls_per_request": per(calls),
        "loop_file_bytes_per_request": per(file_bytes),
        "loop_blocking_max": float(longest["seconds"]) if longest else 0.0,
    }


def file_metrics(files: dict[str, Any], requests: int) -> dict[str, float | None]:
    written = dict.fromkeys(("database", "log", "state", "other"), 0.0)
    read = 0.0
    for row in files.get("files", []):
        written[row.get("kind", "other")] = written.get(row.get("kind", "other"), 0.0) + float(
            row.get("write_bytes", 0))
        read += float(row.get("read_bytes", 0))
    if not requests:
        return {}
    out: dict[str, float | None] = {
        "log_write_bytes_per_request": written["log"] / requests,
        "state_write_bytes_per_request": written["state"] / requests,
        "other_write_bytes_per_request": written["other"] / requests,
        "file_read_bytes_per_request": read / requests,
    }
    if files.get("database_measured"):
        out["db_write_bytes_per_request"] = written["database"] / requests
    return out


def probe_metrics(probes: dict[str, Any], requests: int) -> dict[str, float | None]:
    """queries_total, queries_per_request, query_rows_per_request and loop_lag_* where measured."""
    out: dict[str, float | None] = {}
    if probes.get("sqlite"):
        out.update(sqlite_metrics(probes["sqlite"], requests))
    if probes.get("blocking"):
        out.update(blocking_metrics(probes["blocking"], requests))
    if probes.get("files"):
        out.update(file_metrics(probes["files"], requests))
    if probes.get("loop_lag"):
        out.update(lag_metrics(probes["loop_lag"]))
    return out
