"""The query breakdown: per-round tables, "what changed" ranking, a deliberately slower query."""

from __future__ import annotations

import pytest

from harness.experiment import Probes
from harness.probes import breakdown_details, collect_probe_data, probe_metrics
from harness.probes.breakdown import merge_sqlite
from harness.results import ExperimentInfo, Results, Round
from tests.probes_support import app_line, get, probed_env, sqlite_app


def _row(statement: str, calls: int, total: float, where: str, operation: str = "execute") -> dict:
    return {"statement": statement, "operation": operation, "calls": calls, "total": total,
            "max": total / calls, "min": total / calls, "rows": calls,
            "callers": [{"where": where, "calls": calls, "total": total}]}


def _sqlite(*rows: dict) -> dict:
    return {"operations": {}, "statements": list(rows)}


def _results(label: str, probes: list[dict]) -> Results:
    rounds = tuple(Round(index=i, side=label, instance=1, step=None, started_at="t", duration=1.0,
                         probes=p) for i, p in enumerate(probes))
    return Results(label=label, experiment=ExperimentInfo(name="e", path="e.toml", sha256="0"),
                   environment={}, rounds=rounds, created_at="t")


def test_tables_are_per_round_with_the_thesis_columns() -> None:
    side = _results("baseline", [{"sqlite": _sqlite(_row("SELECT ?", 10, 1.0, "a.py:1 f"))},
                                 {"sqlite": _sqlite(_row("SELECT ?", 30, 3.0, "a.py:1 f"))}])
    table = breakdown_details(side, side)["queries"]["baseline"]
    assert len(table) == 1
    row = table[0]
    assert row["calls"] == 20 and row["total"] == pytest.approx(2.0)
    assert row["avg"] == pytest.approx(0.1) and row["max"] == 0.1 and row["min"] == 0.1
    assert row["callers"] == [{"where": "a.py:1 f", "via": "", "calls": 20,
                               "total": pytest.approx(2.0)}]


def test_changes_rank_by_time_then_calls() -> None:
    base = _results("baseline", [{"sqlite": _sqlite(
        _row("SELECT a", 10, 0.10, "a.py:1 f"), _row("SELECT b", 10, 0.10, "b.py:2 g"),
        _row("SELECT c", 10, 0.10, "c.py:3 h"))}])
    cand = _results("candidate", [{"sqlite": _sqlite(
        _row("SELECT a", 10, 0.10, "a.py:1 f"), _row("SELECT b", 10, 0.90, "b.py:2 g"),
        _row("SELECT c", 40, 0.10, "c.py:3 h"), _row("SELECT d", 1, 0.05, "d.py:4 k"))}])
    queries = breakdown_details(base, cand)["queries"]
    order = [c["statement"] for c in queries["changes"]]
    assert order == ["SELECT b", "SELECT d", "SELECT c", "SELECT a"]
    first = queries["changes"][0]
    assert first["total_change"] == pytest.approx(0.8) and first["top_caller"] == "b.py:2 g"
    assert queries["changes"][1]["baseline_calls"] == 0  # new in the candidate
    assert [c["where"] for c in queries["caller_changes"]][:2] == ["b.py:2 g", "d.py:4 k"]


def test_missing_data_gives_no_entry_and_one_sided_data_no_changes() -> None:
    empty = _results("baseline", [{}])
    assert breakdown_details(empty, empty) == {}
    cand = _results("candidate", [{"sqlite": _sqlite(_row("SELECT a", 1, 0.1, "a.py:1 f")),
                                   "loop_lag": {"kind": "asyncio", "interval": 0.1,
                                                "samples": [0.01]}}])
    details = breakdown_details(empty, cand)
    assert details["queries"]["changes"] == [] and details["queries"]["baseline_rounds"] == 0
    assert details["loop_lag"] == {"baseline": None, "candidate": {
        "kind": "asyncio", "interval": 0.1, "samples": [0.01]}}


def test_merge_keeps_extremes_and_sums_callers() -> None:
    a = _sqlite(_row("SELECT a", 2, 0.2, "a.py:1 f"))
    b = _sqlite(_row("SELECT a", 1, 0.5, "a.py:9 g"))
    merged = merge_sqlite([a, None, b])["statements"][0]
    assert merged["calls"] == 3 and merged["max"] == 0.5 and merged["min"] == 0.1
    assert [c["where"] for c in merged["callers"]] == ["a.py:9 g", "a.py:1 f"]
    assert merge_sqlite([None]) is None


def test_probe_metrics_from_one_round() -> None:
    probes = {"sqlite": {"operations": {
        "execute": {"calls": 8, "rows": 2}, "executemany": {"calls": 2, "rows": 9},
        "fetchall": {"calls": 4, "rows": 40}, "iterate": {"calls": 1, "rows": 10},
        "commit": {"calls": 3, "rows": 0}}},
        "loop_lag": {"kind": "asyncio", "interval": 0.1, "samples": [0.0, 0.01, 0.02, 0.5]}}
    metrics = probe_metrics(probes, requests=5)
    assert metrics["queries_total"] == 10 and metrics["queries_per_request"] == 2.0
    assert metrics["query_rows_per_request"] == 10.0
    assert metrics["loop_lag_max"] == 0.5 and metrics["loop_lag_mean"] == pytest.approx(0.1325)
    assert probe_metrics({}, 5) == {}
    assert probe_metrics(probes, 0)["queries_per_request"] is None


def _round_of_app(tmp_path, index: int, label: str, slow: bool) -> Round:
    data = tmp_path / f"{label}-{index}"
    env = probed_env(data, Probes(sqlite=True), {"SQLITE_APP_SLOW": "1" if slow else "0"})
    with sqlite_app(tmp_path, env) as base:
        for i in range(1, 21):
            get(f"{base}/items/{i}")
            get(f"{base}/items?limit=5")
    probes = collect_probe_data(data)
    return Round(index=index, side=label, instance=1, step=None, started_at="t", duration=1.0,
                 probes=probes, summary=probe_metrics(probes, 40))


@pytest.mark.integration
@pytest.mark.slow
def test_a_deliberately_slower_query_and_its_caller_rank_first(tmp_path) -> None:
    info = ExperimentInfo(name="slow-query", path="e.toml", sha256="0")
    sides = {}
    for label, slow in (("baseline", False), ("candidate", True)):
        rounds = tuple(_round_of_app(tmp_path, i, label, slow) for i in range(2))
        sides[label] = Results(label=label, experiment=info, environment={}, rounds=rounds,
                               created_at="t")
    queries = breakdown_details(sides["baseline"], sides["candidate"])["queries"]

    item_caller = f"tests/data/sqlite_app.py:{app_line('item lookup')} item"
    first = queries["changes"][0]
    assert first["statement"].startswith("SELECT id, name FROM items WHERE id = ? AND (WITH")
    assert first["operation"] == "execute" and first["total_change"] > 0
    assert first["candidate_calls"] == 20 and first["top_caller"] == item_caller
    assert queries["caller_changes"][0]["where"] == item_caller
    # the counters did not move: same statements per request on both sides
    for label in sides:
        assert {r.summary["queries_per_request"] for r in sides[label].rounds} == {
            (2 + 20 + 20) / 40}
