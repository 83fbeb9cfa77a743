"""Real ORMs from PyPI (SQLAlchemy, peewee) in a small app run as a real process, probes injected:
the caller of a statement is the app's function with file:line and the ORM's frame beside it; a
statement is one row; the warm-up is not counted; blocking on the loop and the log's bytes are."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.experiment import Probes, load_experiment
from harness.probes import breakdown_details, collect_probe_data, mark_measuring, probe_metrics
from harness.pyfunctions import python_function_changes, run_function_profile
from harness.results import ExperimentInfo, RequestLog, Results, Round
from tests.probes_support import ROOT, free_port, get, probed_env, running

APP = ROOT / "tests" / "data" / "orm_app"
STORES = {"sqlalchemy": APP / "sa_store.py", "peewee": APP / "pw_store.py"}
FUNCTIONS = {"search": "Store.search_items", "add": "Store.add_item"}
MARKERS = {("sqlalchemy", "search"): "search query", ("peewee", "search"): "search query",
           ("sqlalchemy", "add"): "add commit", ("peewee", "add"): "add insert"}
WARMUP, SEARCHES, ADDS = 5, 6, 3


def _line(orm: str, what: str) -> int:
    marker = "# " + MARKERS[(orm, what)]
    lines = STORES[orm].read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.rstrip().endswith(marker))


def _run(tmp_path: Path, orm: str, slow: bool, log: bool = True) -> dict:
    """Start the app, warm it up, mark, then SEARCHES searches and ADDS adds; its probe data."""
    pytest.importorskip(orm)
    side = tmp_path / f"{orm}-{'slow' if slow else 'fast'}-{'log' if log else 'quiet'}"
    state, data = side / "state", side / "probes"
    state.mkdir(parents=True)
    config = Probes(sqlite=True, blocking=True, files=True, flush_interval=60.0,
                    project_roots=("tests/data/orm_app",))
    env = probed_env(data, config, {"ORM_APP_SLOW": "1" if slow else "0"})
    env["PERF_PROBE_STATE_DIR"] = str(state)
    port = free_port()
    command = [sys.executable, str(APP / "server.py"), "--orm", orm, "--port", str(port),
               "--db", str(state / "app.db")] + (["--log", str(state / "app.log")] if log else [])
    base = f"http://127.0.0.1:{port}"
    with running(command, env, ROOT, base + "/health", side / "out.log"):
        for _ in range(WARMUP):
            get(f"{base}/search?q=item%201")
        assert mark_measuring([data]) == []
        for _ in range(SEARCHES):
            get(f"{base}/search?q=item%201")
        for i in range(ADDS):
            get(f"{base}/add?name=n{i}", data=b"")
    probes = collect_probe_data(data)
    assert "warnings" not in probes, probes.get("warnings")
    return probes


def _rows_by_caller(probes: dict, function: str) -> list[dict]:
    return [r for r in probes["sqlite"]["statements"]
            if r["callers"] and r["callers"][0]["where"].endswith(" " + function)]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("orm", ["sqlalchemy", "peewee"])
def test_orm_statements_are_named_by_the_apps_function_with_the_orm_beside(tmp_path, orm):
    probes = _run(tmp_path, orm, slow=True)
    store = STORES[orm].name
    (search,) = [r for r in _rows_by_caller(probes, FUNCTIONS["search"])
                 if r["statement"].upper().startswith("SELECT")]
    # the deliberately slowed statement: the app's function and line, the ORM's frame beside it
    caller = search["callers"][0]
    assert caller["where"] == f"{store}:{_line(orm, 'search')} {FUNCTIONS['search']}"
    assert caller["via"].startswith(orm)  # e.g. sqlalchemy/engine/default.py:... do_execute
    assert "WITH RECURSIVE" in search["statement"]
    # one row per statement (fetches merged in), the warm-up's searches not counted
    assert search["operation"] == "execute" and search["calls"] == SEARCHES
    assert search["rows"] == SEARCHES * 11 and search["fetch_total"] > 0
    assert not any(r["operation"].startswith("fetch") for r in probes["sqlite"]["statements"])
    # every statement ran on the event loop: counted per request, the longest named
    requests = SEARCHES + ADDS
    metrics = probe_metrics(probes, requests)
    on_loop = probes["blocking"]["kinds"]["sqlite"]["calls"]
    assert on_loop == sum(r["loop_calls"] for r in probes["sqlite"]["statements"])
    assert metrics["loop_queries_per_request"] == on_loop / requests >= 1
    assert probes["blocking"]["longest"]["where"].startswith(store)
    # where the bytes went: the adds' commits into the database, one log line per request
    files = {row["path"]: row for row in probes["files"]["files"]}
    assert files["app.log"]["kind"] == "log" and files["app.log"]["writes"] == requests
    assert files["app.db"]["kind"] == "database" and files["app.db"]["write_bytes"] > 0
    assert metrics["log_write_bytes_per_request"] == files["app.log"]["write_bytes"] / requests
    adds = _rows_by_caller(probes, FUNCTIONS["add"])
    assert sum(r["write_bytes"] for r in adds) == files["app.db"]["write_bytes"]
    assert any(r["callers"][0]["where"] == f"{store}:{_line(orm, 'add')} {FUNCTIONS['add']}"
               for r in adds)


def _results(label: str, probes: dict, requests: int) -> Results:
    log = RequestLog(endpoint=("x",) * requests, intended=(0.0,) * requests,
                     sent=(0.0,) * requests, latency=(0.01,) * requests,
                     service=(0.01,) * requests, status=(200,) * requests,
                     nbytes=(10,) * requests, error=(None,) * requests)
    round_ = Round(index=0, side=label, instance=1, step=None, started_at="t", duration=1.0,
                   requests=log, probes=probes)
    return Results(label=label, experiment=ExperimentInfo(name="e", path="e.toml", sha256="0"),
                   environment={}, rounds=(round_,), created_at="t")


@pytest.mark.integration
@pytest.mark.slow
def test_a_rewritten_orm_query_is_paired_as_changed_with_its_caller(tmp_path):
    fast, slow = _run(tmp_path, "sqlalchemy", slow=False), _run(tmp_path, "sqlalchemy", slow=True)
    requests = SEARCHES + ADDS
    details = breakdown_details(_results("baseline", fast, requests),
                                _results("candidate", slow, requests))
    changes = details["queries"]["changes"]
    (changed,) = [c for c in changes if c["change"] == "changed"]
    assert "WITH RECURSIVE" in changed["statement"]
    assert "WITH RECURSIVE" not in changed["baseline_statement"]
    search = _line("sqlalchemy", "search")
    assert changed["top_caller"] == f"sa_store.py:{search} Store.search_items"
    assert changed["calls_change"] == 0  # same number of searches: exactly 0, no float noise
    assert not [c for c in changes if c["change"] in ("added", "removed")]
    # the same app on both sides writes the same log volume: no file change to report
    assert details["files"]["headline"] is None or "log" not in details["files"]["headline"]


PROFILE_TOML = """
name = "orm-profile"
[variables]
extra = "0"
[subject]
command = ["{python}", "tests/data/orm_app/server.py", "--orm", "peewee", "--port", "{port}",
           "--db", "{state_dir}/app.db"]
env = { ORM_APP_EXTRA_WORK = "{extra}" }
ready = { http = "/health", timeout = "30s" }
[workload]
rate = "10/s"
requests = 10
[[workload.endpoints]]
name = "search"
path = "/search?q=item%201"
[instructions]
requests = SEARCHES
"""


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the profile is read with SIGUSR1")
def test_added_work_in_one_python_function_is_named_first(tmp_path):
    """The Python function profile (the one mechanism for "which Python functions changed"):
    the candidate's search handler loops 20 more times calling `tidy`; the handler is named
    first (its loop: +40 line events per request), `tidy` next (+20 calls)."""
    pytest.importorskip("peewee")
    path = tmp_path / "orm-profile.toml"
    path.write_text(PROFILE_TOML.replace("SEARCHES", str(SEARCHES)), encoding="utf-8")
    sides = []
    for label, extra in (("baseline", "0"), ("candidate", "20")):
        experiment = load_experiment(path, overrides={"extra": extra})
        profile = run_function_profile(experiment, work_dir=tmp_path / label, project_root=ROOT,
                                       python=sys.executable)
        assert profile["available"], profile["reason"]
        sides.append(profile)
    changes = python_function_changes(*sides)
    lines = (APP / "server.py").read_text().splitlines()
    line = {name: next(n for n, text in enumerate(lines, 1) if text.startswith(prefix))
            for name, prefix in (("tidy", "def tidy("), ("search", "async def search("))}
    assert changes[0]["function"] == f"tests/data/orm_app/server.py:{line['search']} search"
    assert changes[0]["unit"] == "lines" and changes[0]["change"] == 40.0
    assert changes[0]["calls_candidate"] == changes[0]["calls_baseline"]
    assert changes[1]["function"] == f"tests/data/orm_app/server.py:{line['tidy']} tidy"
    # 21 calls per search in the candidate; the baseline's one call may fall below the profile's
    # top 200 functions of that side (pyfunctions.TOP), and then counts as 0
    assert changes[1]["calls_candidate"] == 21.0
    assert changes[1]["calls_baseline"] in (0.0, 1.0)


@pytest.mark.integration
@pytest.mark.slow
def test_a_log_line_per_request_is_found_in_the_log_file(tmp_path):
    requests = SEARCHES + ADDS
    quiet, logging = _run(tmp_path, "peewee", False, log=False), _run(tmp_path, "peewee", False)
    files = breakdown_details(_results("baseline", quiet, requests),
                              _results("candidate", logging, requests))["files"]
    lines = (tmp_path / "peewee-fast-log" / "state" / "app.log").read_bytes().splitlines()
    measured = sum(len(line) + 1 for line in lines[WARMUP:])  # the warm-up's are not counted
    per_request = measured / requests
    assert files["headline"] == (
        f"{per_request:+,.0f} B written per request, all in the log file app.log")
    assert files["changes"][0]["path"] == "app.log"
    assert files["changes"][0]["write_change"] == pytest.approx(per_request, abs=1e-3)
    # the same database work on both sides
    base_db = files["baseline"]["kinds"]["database"]["write_bytes"]
    assert files["candidate"]["kinds"]["database"]["write_bytes"] == pytest.approx(base_db)
