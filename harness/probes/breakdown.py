"""The query breakdown: SQLite probe data merged over processes and rounds, and what changed.

The tables follow the thesis' Tables 6.4 and 6.5 (calls, total, max, average, min time per
statement, with the five costliest callers); the "what changed" tables rank statements and callers
by how much their time per round moved between baseline and candidate, so a regression comes with
its most likely cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.probes.sqlite import TOP_CALLERS
from harness.probes.sqlite import empty_totals as _empty
from harness.probes.sqlite import merge_totals as _add
from harness.results import Results


def _top(callers: dict[str, list[float]], limit: int = TOP_CALLERS) -> list[dict[str, Any]]:
    ranked = sorted(callers.items(), key=lambda kv: (-kv[1][1], kv[0]))[:limit]
    return [{"where": where, "calls": calls, "total": total} for where, (calls, total) in ranked]


def merge_sqlite(parts: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sum several sqlite probe snapshots (processes of one round, or rounds); None if none."""
    operations: dict[str, dict[str, Any]] = {}
    statements: dict[tuple[str, str], dict[str, Any]] = {}
    callers: dict[tuple[str, str], dict[str, list[float]]] = {}
    seen = False
    for part in parts:
        if not isinstance(part, dict):
            continue
        seen = True
        for operation, totals in part.get("operations", {}).items():
            _add(operations.setdefault(operation, _empty()), totals)
        for row in part.get("statements", []):
            key = (row["statement"], row["operation"])
            _add(statements.setdefault(key, _empty()), row)
            mine = callers.setdefault(key, {})
            for c in row.get("callers", []):
                slot = mine.setdefault(c["where"], [0, 0.0])
                slot[0] += c["calls"]
                slot[1] += c["total"]
    if not seen:
        return None
    rows = [
        {"statement": s, "operation": o, **totals, "callers": _top(callers[(s, o)])}
        for (s, o), totals in statements.items()
    ]
    rows.sort(key=lambda r: (-r["total"], r["statement"], r["operation"]))
    return {"operations": operations, "statements": rows}


def _per_round(results: Results) -> tuple[list[dict[str, Any]], int]:
    """The side's statement rows summed over its rounds and divided by the number of rounds.

    Instances of one round are summed (they are one round of the system); max and min stay the
    extremes over all rounds. Each row gains "avg" (total / calls).
    """
    parts = [r.probes.get("sqlite") for r in results.rounds if r.probes.get("sqlite")]
    rounds = len({r.index for r in results.rounds if r.probes.get("sqlite")})
    merged = merge_sqlite(parts)
    if merged is None or not rounds:
        return [], 0
    out = []
    for row in merged["statements"]:
        scaled = dict(row, calls=row["calls"] / rounds, total=row["total"] / rounds,
                      rows=row["rows"] / rounds)
        scaled["avg"] = row["total"] / row["calls"] if row["calls"] else 0.0
        scaled["callers"] = [dict(c, calls=c["calls"] / rounds, total=c["total"] / rounds)
                             for c in row["callers"]]
        out.append(scaled)
    return out, rounds


def _change_row(key: tuple[str, ...], names: tuple[str, ...], base: dict[str, Any] | None,
                cand: dict[str, Any] | None) -> dict[str, Any]:
    b = base or {"total": 0.0, "calls": 0.0}
    c = cand or {"total": 0.0, "calls": 0.0}
    row: dict[str, Any] = dict(zip(names, key, strict=True))
    row.update(baseline_total=b["total"], candidate_total=c["total"],
               total_change=c["total"] - b["total"], baseline_calls=b["calls"],
               candidate_calls=c["calls"], calls_change=c["calls"] - b["calls"])
    return row


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-abs(r["total_change"]), -abs(r["calls_change"])))


def statement_changes(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]):
    """Per (statement, operation): time and calls per round on each side, ranked by change."""
    base = {(r["statement"], r["operation"]): r for r in baseline}
    cand = {(r["statement"], r["operation"]): r for r in candidate}
    rows = []
    for key in sorted(set(base) | set(cand)):
        row = _change_row(key, ("statement", "operation"), base.get(key), cand.get(key))
        callers = (cand.get(key) or {}).get("callers") or (base.get(key) or {}).get("callers")
        row["top_caller"] = callers[0]["where"] if callers else None
        rows.append(row)
    return _ranked(rows)


def _by_caller(rows: list[dict[str, Any]]) -> dict[tuple[str], dict[str, float]]:
    out: dict[tuple[str], dict[str, float]] = {}
    for row in rows:
        for c in row["callers"]:
            slot = out.setdefault((c["where"],), {"total": 0.0, "calls": 0.0})
            slot["total"] += c["total"]
            slot["calls"] += c["calls"]
    return out


def caller_changes(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]):
    """Per caller (`file:line function`, over all its statements): time and calls, ranked."""
    base, cand = _by_caller(baseline), _by_caller(candidate)
    keys = sorted(set(base) | set(cand))
    return _ranked([_change_row(k, ("where",), base.get(k), cand.get(k)) for k in keys])


def _lag(results: Results) -> dict[str, Any] | None:
    found = [r.probes["loop_lag"] for r in results.rounds if r.probes.get("loop_lag")]
    if not found:
        return None
    samples = [s for lag in found for s in lag.get("samples", [])]
    return {"kind": found[0].get("kind"), "interval": found[0].get("interval"), "samples": samples}


def breakdown_details(baseline: Results, candidate: Results) -> dict[str, Any]:
    """Comparison.details entries: "queries" (see harness/probes/__init__.py) and "loop_lag".

    "loop_lag" holds each side's lag samples over all its rounds ({"kind", "interval",
    "samples"} or None), for the side-by-side ECDF. Entries are left out when neither side has
    that probe's data; the change tables are empty when only one side has it.
    """
    details: dict[str, Any] = {}
    base_rows, base_rounds = _per_round(baseline)
    cand_rows, cand_rounds = _per_round(candidate)
    if base_rounds or cand_rounds:
        both = bool(base_rounds and cand_rounds)
        details["queries"] = {
            "baseline": base_rows,
            "candidate": cand_rows,
            "baseline_rounds": base_rounds,
            "candidate_rounds": cand_rounds,
            "changes": statement_changes(base_rows, cand_rows) if both else [],
            "caller_changes": caller_changes(base_rows, cand_rows) if both else [],
        }
    base_lag, cand_lag = _lag(baseline), _lag(candidate)
    if base_lag or cand_lag:
        details["loop_lag"] = {"baseline": base_lag, "candidate": cand_lag}
    return details
