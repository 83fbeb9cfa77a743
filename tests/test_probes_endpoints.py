"""Per-endpoint probe counts: the function-profile run counts each endpoint's statements,
blocking calls on the loop and bytes by file kind per request, and compare judges them as
`metric[endpoint]` series, gated for one endpoint with `[metrics."NAME@ENDPOINT"]`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import psutil
import pytest

from harness.compare import compare
from harness.experiment import load_experiment, validate_experiment
from harness.pyfunctions import run_function_profile
from harness.report import render_html
from harness.view import endpoint_tables, findings
from tests.synthetic import counter_summary, make_results, make_round
from tests.test_report_endpoints import MIXED_TOML

ROOT = Path(__file__).resolve().parents[1]


def _side(label: str, counts: dict[str, dict[str, float]]):
    python = {"available": True, "mode": "settrace", "requests": 50, "endpoints": {},
              "probes": counts}
    return make_results([make_round(0, counter_summary(), side=label)], label=label,
                        instructions={"python": python})


def _by_key(comparison):
    return {m.key: m for m in comparison.metrics}


def test_profile_counts_are_judged_per_endpoint_and_gated_when_asked():
    base = _side("baseline", {"search": {"loop_queries_per_request": 0.0,
                                         "log_write_bytes_per_request": 60.0},
                              "home": {"loop_queries_per_request": 0.0}})
    cand = _side("candidate", {"search": {"loop_queries_per_request": 2.0,
                                          "log_write_bytes_per_request": 60.0},
                               "home": {"loop_queries_per_request": 0.0}})
    shown = _by_key(compare(base, cand))
    search = shown["loop_queries_per_request[search]"]
    assert search.verdict == "regression" and not search.gate  # shown by default
    assert search.evidence.startswith("counter of the function-profile run, 1 + 1 runs")
    assert shown["loop_queries_per_request[home]"].verdict == "unchanged"
    assert shown["log_write_bytes_per_request[search]"].verdict == "unchanged"
    gated = compare(base, cand, policies={"loop_queries_per_request@search": {"gate": True}})
    assert _by_key(gated)["loop_queries_per_request[search]"].gate
    assert gated.overall == "regression"
    # the report: the endpoint's row in the per-endpoint table, and the finding that decided it
    tables = endpoint_tables(gated)
    rows = {(group, row.label) for table in tables for group, items in table.groups
            for row in items}
    assert ("search", "queries on the loop / request") in rows
    assert findings(gated)[0].text.startswith("search: queries on the loop / request 0 → 2")
    assert "queries on the loop / request" in render_html(gated)


def test_one_endpoint_or_one_side_of_profile_counts_adds_no_series():
    one = _side("baseline", {"channels": {"queries_per_request": 1.0}})
    other = _side("candidate", {"channels": {"queries_per_request": 2.0}})
    assert not [k for k in _by_key(compare(one, other)) if "[" in k]  # the mix says it already
    two = _side("candidate", {"a": {"queries_per_request": 1.0}, "b": {"queries_per_request": 1.0}})
    comparison = compare(one, two)
    assert not [k for k in _by_key(comparison) if "[" in k]
    assert any("exist only in the candidate" in w for w in comparison.warnings)


def test_a_probe_count_can_be_gated_for_one_endpoint(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED_TOML.replace("latency_mean@search", "loop_queries_per_request@search"),
                    encoding="utf-8")
    assert validate_experiment(path) == []
    assert load_experiment(path).metrics["loop_queries_per_request@search"].min_change == \
        pytest.approx(0.2)
    path.write_text(MIXED_TOML.replace("latency_mean@search", "loop_queries_per_request@serch"),
                    encoding="utf-8")
    (problem,) = validate_experiment(path)
    assert 'unknown endpoint "serch"' in problem


def _experiment(tmp_path: Path) -> Path:
    """api-quick with a second endpoint (/health: no query), small seeds."""
    tree = tmp_path / "tree"
    for part in ("subjects", "experiments"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    quick = tree / "experiments" / "api-quick.toml"
    text = quick.read_text()
    anchor = 'name = "channels"\npath = "/channels"\n'
    assert anchor in text
    quick.write_text(text.replace(anchor, anchor + '\n[[workload.endpoints]]\nname = "health"\n'
                                          'path = "/health"\n'))
    return tree


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(sys.platform != "linux", reason="SIGUSR1 and /proc (database bytes)")
def test_the_peer_blocking_on_the_loop_is_counted_for_its_endpoint(tmp_path):
    """The reference peer, --db worker (baseline) against --db blocking (candidate), GET /channels
    and GET /health: the statement on the loop is counted for /channels only, exactly."""
    tree = _experiment(tmp_path)
    sides = {}
    for label, db in (("baseline", "worker"), ("candidate", "blocking")):
        loaded = load_experiment(tree / "experiments" / "api-quick.toml",
                                 overrides={"db": db, "channels": "50", "torrents": "500"})
        profile = run_function_profile(loaded, work_dir=tmp_path / label, project_root=tree,
                                       python=sys.executable)
        assert profile["available"], profile["reason"]
        assert "probe_warnings" not in profile, profile["probe_warnings"]
        sides[label] = profile
    worker, blocking = sides["baseline"]["probes"], sides["candidate"]["probes"]
    for counts in (worker, blocking):
        assert counts["channels"]["queries_per_request"] == 1.0
        assert counts["health"]["queries_per_request"] == 0.0
        assert counts["health"]["loop_queries_per_request"] == 0.0
        # one access-log line per request, written on the loop; nothing else: neither the
        # profile's snapshots nor the probes' own output are counted as the subject's
        for endpoint in ("channels", "health"):
            assert counts[endpoint]["other_write_bytes_per_request"] == 0.0
            assert counts[endpoint]["db_write_bytes_per_request"] == 0.0
            assert counts[endpoint]["log_write_bytes_per_request"] == \
                counts[endpoint]["loop_file_bytes_per_request"] > 40
        assert counts["health"]["loop_blocking_calls_per_request"] == 1.0  # the log line
    assert worker["channels"]["log_write_bytes_per_request"] == \
        blocking["channels"]["log_write_bytes_per_request"]
    assert worker["channels"]["loop_queries_per_request"] == 0.0
    assert worker["channels"]["loop_blocking_calls_per_request"] == 1.0
    assert blocking["channels"]["loop_queries_per_request"] == 1.0
    assert blocking["channels"]["loop_blocking_calls_per_request"] == 2.0
    base = make_results([make_round(0, counter_summary(), side="baseline")], label="baseline",
                        instructions={"python": sides["baseline"]})
    cand = make_results([make_round(0, counter_summary(), side="candidate")], label="candidate",
                        instructions={"python": sides["candidate"]})
    comparison = compare(base, cand,
                         policies={"loop_queries_per_request@channels": {"gate": True}})
    metrics = _by_key(comparison)
    assert metrics["loop_queries_per_request[channels]"].verdict == "regression"
    assert metrics["loop_queries_per_request[channels]"].gate
    assert metrics["loop_queries_per_request[health]"].verdict == "unchanged"
    assert comparison.overall == "regression"
    left = [p for p in psutil.process_iter(["cmdline"])
            if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not left
