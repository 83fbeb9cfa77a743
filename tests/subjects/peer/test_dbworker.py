"""The serialized database worker: order, errors, sentinels, drain and statistics."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subjects.peer.dbworker import DatabaseWorker, WorkerClosedError


def _memory() -> sqlite3.Connection:
    return sqlite3.connect(":memory:")


def _file_opener(path: Path):
    def opener() -> sqlite3.Connection:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        conn.commit()
        return conn
    return opener


def _insert(conn: sqlite3.Connection, value: int) -> None:
    conn.execute("INSERT INTO t VALUES (?)", (value,))


def _count(path: Path) -> int:
    with sqlite3.connect(path) as other:
        return other.execute("SELECT COUNT(*) FROM t").fetchone()[0]


def _started(opener=_memory) -> DatabaseWorker:
    worker = DatabaseWorker(opener)
    worker.start()
    return worker


async def _close(worker: DatabaseWorker) -> None:
    await worker.shutdown()
    worker.join(10)


# Each submitter gets a list of (pauses before submitting, whether the call queries SQLite).
_PLANS = st.lists(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=10),
                  min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(plan=_PLANS)
def test_calls_run_in_submission_order_under_concurrent_submitters(plan):
    async def scenario():
        worker = _started()
        submitted, executed = [], []

        def call(conn, tag, query):
            if query:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            executed.append(tag)
            return tag

        async def submitter(sid, steps):
            futures = []
            for n, (pauses, query) in enumerate(steps):
                for _ in range(pauses):
                    await asyncio.sleep(0)
                submitted.append((sid, n))
                futures.append(worker.run(call, (sid, n), query=query))
            return await asyncio.gather(*futures)

        results = await asyncio.gather(*(submitter(i, s) for i, s in enumerate(plan)))
        await _close(worker)
        return submitted, executed, results

    submitted, executed, results = asyncio.run(scenario())
    assert executed == submitted
    assert results == [[(i, n) for n in range(len(steps))] for i, steps in enumerate(plan)]


def test_order_holds_with_a_deep_queue():
    async def scenario():
        worker = _started()
        gate = threading.Event()
        executed = []
        blocker = worker.run(lambda conn: gate.wait(10))
        futures = [worker.run(lambda conn, i=i: executed.append(i)) for i in range(300)]
        assert worker.stats().queue_depth == 301
        gate.set()
        await asyncio.gather(blocker, *futures)
        await _close(worker)
        return executed

    assert asyncio.run(scenario()) == list(range(300))


def test_an_error_reaches_the_caller_and_the_worker_survives():
    async def scenario():
        worker = _started()

        def boom(conn):
            raise ValueError("bad value 42")

        with pytest.raises(ValueError, match="bad value 42"):
            await worker.run(boom)
        with pytest.raises(sqlite3.OperationalError):
            await worker.run(lambda conn: conn.execute("SELEC nonsense"))
        after = await worker.run(lambda conn: conn.execute("SELECT 7").fetchone()[0])
        stats = worker.stats()
        await _close(worker)
        return after, stats

    after, stats = asyncio.run(scenario())
    assert after == 7
    assert (stats.failed, stats.completed) == (2, 1)


def test_commit_sentinel_makes_changes_visible_to_other_connections(tmp_path):
    path = tmp_path / "db.sqlite"

    async def scenario():
        worker = _started(_file_opener(path))
        await worker.run(_insert, 1)
        before = _count(path)
        await worker.commit()
        after = _count(path)
        stats = worker.stats()
        await _close(worker)
        return before, after, stats.commits

    assert asyncio.run(scenario()) == (0, 1, 1)


def test_shutdown_drains_the_queue_then_refuses_new_calls(tmp_path):
    path = tmp_path / "db.sqlite"

    async def scenario():
        worker = _started(_file_opener(path))

        def slow_insert(conn, value):
            time.sleep(0.002)
            _insert(conn, value)
            return value

        pending = [worker.run(slow_insert, i) for i in range(25)]
        committed = worker.commit()
        stopped = worker.shutdown()  # queued behind everything above, not awaited yet
        with pytest.raises(WorkerClosedError):
            worker.run(slow_insert, 99)
        await stopped
        worker.join(10)
        assert all(f.done() for f in [*pending, committed])
        return [f.result() for f in pending], worker.alive

    results, alive = asyncio.run(scenario())
    assert results == list(range(25))
    assert not alive
    assert _count(path) == 25


def test_shutdown_rolls_back_what_was_not_committed(tmp_path):
    path = tmp_path / "db.sqlite"

    async def scenario():
        worker = _started(_file_opener(path))
        await worker.run(_insert, 1)
        await worker.commit()
        await worker.run(_insert, 2)
        await _close(worker)

    asyncio.run(scenario())
    assert _count(path) == 1


def test_a_cancelled_caller_does_not_stop_the_worker():
    async def scenario():
        worker = _started()
        gate = threading.Event()
        blocked = worker.run(lambda conn: gate.wait(10))
        abandoned = worker.run(lambda conn: "nobody waits")
        abandoned.cancel()
        gate.set()
        await blocked
        value = await worker.run(lambda conn: "still here")
        await _close(worker)
        return value

    assert asyncio.run(scenario()) == "still here"


def test_statistics_count_depth_and_waiting():
    async def scenario():
        worker = _started()
        gate = threading.Event()
        futures = [worker.run(lambda conn: gate.wait(10))]
        futures += [worker.run(lambda conn: None) for _ in range(4)]
        during = worker.stats()
        time.sleep(0.01)  # the queued calls wait at least this long
        gate.set()
        await asyncio.gather(*futures)
        after = worker.stats()
        await _close(worker)
        return during, after

    during, after = asyncio.run(scenario())
    assert (during.queue_depth, during.submitted) == (5, 5)
    assert after.queue_depth == 0
    assert after.max_queue_depth == 5
    assert after.completed == 5
    assert after.wait_total >= 4 * 0.01
    assert after.wait_max >= 0.01


def test_a_connection_that_cannot_open_fails_start(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "db.sqlite"
    worker = DatabaseWorker(lambda: sqlite3.connect(missing))
    with pytest.raises(sqlite3.OperationalError):
        worker.start()
