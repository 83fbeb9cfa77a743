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


def probe_metrics(probes: dict[str, Any], requests: int) -> dict[str, float | None]:
    """queries_total, queries_per_request, query_rows_per_request and loop_lag_* where measured."""
    out: dict[str, float | None] = {}
    if probes.get("sqlite"):
        out.update(sqlite_metrics(probes["sqlite"], requests))
    if probes.get("loop_lag"):
        out.update(lag_metrics(probes["loop_lag"]))
    return out
