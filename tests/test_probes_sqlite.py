"""The SQLite probe: normalised statements, per-operation totals, callers, threads, a real app."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading

import pytest

from harness.experiment import Probes
from harness.probes import collect_probe_data, probe_metrics
from harness.probes import sqlite as probe
from tests.probes_support import app_line, get, probed_env, sqlite_app

HERE = "tests/test_probes_sqlite.py"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("SELECT * FROM t WHERE name = 'it''s' AND x > -1.5e3",
         "SELECT * FROM t WHERE name = ? AND x > -?"),
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?)"),
        ("select * from t where id in (?,?,?,?)", "select * from t where id IN (?)"),
        ("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')", "INSERT INTO t VALUES (?, ?)"),
        ("SELECT t1.c2 FROM t1 WHERE c = :name AND d = ?3",
         "SELECT t1.c2 FROM t1 WHERE c = :name AND d = ?3"),
        ("SELECT x'00ff',\n  0x1F -- note\n FROM \"t 1\";", 'SELECT ?, ? FROM "t 1"'),
        ("SELECT /* 5 */ 7", "SELECT ?"),
    ],
)
def test_normalise_replaces_literals_and_keeps_names(sql: str, expected: str) -> None:
    assert probe.normalise(sql) == expected


def test_normalise_of_a_non_string_is_marked_unknown() -> None:
    assert probe.normalise(b"SELECT 1") == probe.UNKNOWN


@pytest.fixture
def probed():
    """The probe installed in this process, with fresh totals; restored afterwards."""
    probe.install()
    probe.STATS.reset()
    yield probe.STATS
    probe.uninstall()
    probe.STATS.reset()


def _rows(snapshot: dict, statement: str) -> dict[str, dict]:
    return {r["operation"]: r for r in snapshot["statements"] if r["statement"] == statement}


def test_probed_connection_times_every_operation_per_statement(probed) -> None:
    from sqlite3 import connect  # by name, after the probe installed: must still be probed

    db = connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t (v) VALUES (?)", [("a",), ("b",), ("c",)])
    db.commit()
    select_line = sys._getframe().f_lineno + 1
    assert len(db.execute("SELECT id FROM t WHERE id > 0").fetchall()) == 3
    assert db.execute("SELECT id FROM t WHERE id = 2").fetchone() == (2,)
    assert db.cursor().execute("SELECT id FROM t WHERE id = 9").fetchone() is None
    assert len(db.execute("SELECT v FROM t").fetchmany(2)) == 2
    assert sum(1 for _ in db.execute("SELECT id, v FROM t")) == 3
    with db:
        db.execute("UPDATE t SET v = 'z' WHERE id < 3")
    db.executescript("CREATE TABLE u (x); DROP TABLE u;")
    snap = probed.snapshot()

    ops = snap["operations"]
    assert ops["execute"]["calls"] == 7 and ops["executemany"]["calls"] == 1
    assert ops["executemany"]["rows"] == 3 and ops["fetchall"]["rows"] == 3
    assert ops["fetchone"] == {**ops["fetchone"], "calls": 2, "rows": 1}
    assert ops["fetchmany"]["rows"] == 2
    assert ops["iterate"]["calls"] == 1 and ops["iterate"]["rows"] == 3
    assert ops["commit"]["calls"] == 2  # db.commit() and the `with db:` block
    assert ops["executescript"]["calls"] == 1
    by_id = _rows(snap, "SELECT id FROM t WHERE id = ?")
    # one row per statement: the fetches add their time and rows to it, not calls or rows of 0
    assert set(by_id) == {"execute"}
    assert by_id["execute"]["calls"] == 2 and by_id["execute"]["rows"] == 1
    assert 0 < by_id["execute"]["fetch_total"] <= by_id["execute"]["total"]
    assert _rows(snap, "UPDATE t SET v = ? WHERE id < ?")["execute"]["rows"] == 2
    first = _rows(snap, "SELECT id FROM t WHERE id > ?")
    where = f"{HERE}:{select_line} test_probed_connection_times_every_operation_per_statement"
    assert set(first) == {"execute"} and first["execute"]["rows"] == 3
    assert first["execute"]["callers"][0]["where"] == where
    assert first["execute"]["callers"][0]["via"] == ""  # called sqlite3 directly
    for row in snap["statements"]:
        assert 0 <= row["min"] <= row["max"] <= row["total"]


def test_custom_factories_keep_their_behaviour(probed) -> None:
    class Mine(sqlite3.Connection):
        def hello(self) -> str:
            return "mine"

    class MyCursor(sqlite3.Cursor):
        pass

    positional = sqlite3.connect(":memory:", 5.0, 0, "", True, Mine)
    by_name = sqlite3.connect(":memory:", factory=Mine)
    for db in (positional, by_name):
        assert isinstance(db, Mine) and db.hello() == "mine"
        cursor = db.cursor(MyCursor)
        assert isinstance(cursor, MyCursor)
        cursor.execute("SELECT 1")
    assert probed.snapshot()["operations"]["execute"]["calls"] == 2


def test_connections_in_worker_threads_are_counted_exactly(probed, tmp_path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")

    def work(n: int) -> None:
        db = sqlite3.connect(path, timeout=30)
        for i in range(50):
            db.execute("INSERT INTO t VALUES (?)", (n * 100 + i,))
            db.commit()
        db.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = _rows(probed.snapshot(), "INSERT INTO t VALUES (?)")
    assert rows["execute"]["calls"] == 200 and rows["execute"]["rows"] == 200
    assert rows["execute"]["callers"][0]["where"].startswith(f"{HERE}:")


def test_callers_are_the_five_costliest(probed) -> None:
    stats = probe.QueryStats()
    for i in range(8):
        stats.record("SELECT ?", "execute", 0.001 * (i + 1), 0, f"app.py:{i} f")
    callers = stats.snapshot()["statements"][0]["callers"]
    assert [c["where"] for c in callers] == [f"app.py:{i} f" for i in (7, 6, 5, 4, 3)]


def test_too_many_distinct_statements_fold_into_other() -> None:
    stats = probe.QueryStats()
    for i in range(probe.MAX_STATEMENTS + 10):
        stats.record(f"SELECT {i}", "execute", 0.0, 0, "x")
    statements = {r["statement"]: r for r in stats.snapshot()["statements"]}
    assert len(statements) == probe.MAX_STATEMENTS + 1
    assert statements[probe.OTHER]["calls"] == 10


@pytest.mark.integration
@pytest.mark.slow
def test_unmodified_aiohttp_app_per_statement_calls_rows_and_callers(tmp_path) -> None:
    data = tmp_path / "probes"
    config = Probes(sqlite=True, loop_lag=True, loop_lag_interval=0.05, flush_interval=60.0)
    env = probed_env(data, config)  # data only from the exit path
    with sqlite_app(tmp_path, env, items=50) as base:
        for i in (1, 2, 3, 4, 999):
            try:
                get(f"{base}/items/{i}")
            except OSError:
                assert i == 999  # 404: the lookup ran and found no row
        for _ in range(3):
            get(f"{base}/items?limit=7")
        for name in ("x", "y"):
            get(f"{base}/items", data=json.dumps({"name": name}).encode())
        for _ in range(2):
            assert int(get(f"{base}/count")) == 52
        get(f"{base}/block?seconds=0.3")
    probes = collect_probe_data(data)

    assert "warnings" not in probes
    sqlite = probes["sqlite"]
    lookup = _rows(sqlite, "SELECT id, name FROM items WHERE id = ?")
    assert set(lookup) == {"execute"}  # one row per statement, fetches merged in
    assert lookup["execute"]["calls"] == 5 and lookup["execute"]["rows"] == 4
    assert lookup["execute"]["callers"][0]["where"] == (
        f"tests/data/sqlite_app.py:{app_line('item lookup')} item")
    listing = _rows(sqlite, "SELECT id, name FROM items ORDER BY id LIMIT ?")
    assert listing["execute"]["calls"] == 3 and listing["execute"]["rows"] == 21
    assert listing["execute"]["callers"][0]["where"] == (
        f"tests/data/sqlite_app.py:{app_line('item list')} items")
    insert = _rows(sqlite, "INSERT INTO items (name) VALUES (?)")
    assert insert["execute"]["calls"] == 2 and insert["execute"]["rows"] == 2
    in_thread = _rows(sqlite, "SELECT count(*) FROM items")
    assert in_thread["execute"]["calls"] == 2
    # run in an executor thread: charged to the handler that handed it off, the worker's beside
    assert in_thread["execute"]["callers"][0]["where"] == (
        f"tests/data/sqlite_app.py:{app_line('count handoff')} count")
    assert in_thread["execute"]["callers"][0]["via"] == (
        f"tests/data/sqlite_app.py:{app_line('thread count')} count_items")
    assert sqlite["operations"]["commit"]["calls"] == 3  # seeding + two inserts

    requests = 5 + 3 + 2 + 2 + 1
    metrics = probe_metrics(probes, requests)
    assert metrics["queries_total"] == 2 + 5 + 3 + 2 + 2  # schema + seed, then the requests
    assert metrics["query_rows_per_request"] == pytest.approx((4 + 21 + 2) / requests)
    assert probes["loop_lag"]["kind"] == "asyncio"
    assert metrics["loop_lag_max"] >= 0.2  # the /block request held the loop for 0.3 s


def test_errors_reach_the_caller_unchanged_and_are_still_timed(probed) -> None:
    db = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError, match="no such table: missing"):
        db.execute("SELECT * FROM missing WHERE id = 1")
    cursor = db.cursor()
    cursor.close()
    with pytest.raises(sqlite3.ProgrammingError):
        cursor.execute("SELECT 1")
    rows = _rows(probed.snapshot(), "SELECT * FROM missing WHERE id = ?")
    assert rows["execute"]["calls"] == 1
