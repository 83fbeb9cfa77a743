"""Callers in the user's code: past the standard library, site-packages and skip_modules, to the
first project frame, with the library frame beside it; paths relative to the project root."""

from __future__ import annotations

import os
import sys
import types

import pytest

from harness.probes import frames
from harness.probes.breakdown import statement_changes, tables


@pytest.fixture
def project(tmp_path):
    yield tmp_path
    frames.configure()  # back to the default: this process's working directory


def _module(path, name: str, source: str) -> types.ModuleType:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def test_the_caller_is_the_first_project_frame_with_the_library_beside(project) -> None:
    here = sys._getframe
    lib = _module(project / "venv" / "site-packages" / "orm" / "core.py", "orm.core",
                  "def execute(get):\n    return get(0)\n")
    dblayer = _module(project / "app" / "db.py", "app.db",
                      "def run(execute, get):\n    return execute(get)\n")
    search = _module(project / "app" / "search.py", "app.search",
                     "def search(run, execute, get):\n    return run(execute, get)\n")
    frames.configure([str(project)], ["app.db"])
    site = search.search(dblayer.run, lib.execute, lambda _: frames.site(here(1)))
    where, via = frames.describe(site)
    assert where == "app/search.py:2 search"  # app.db is skipped: named in skip_modules
    assert via == "orm/core.py:2 execute"  # after site-packages/, whatever the venv's path
    frames.configure([str(project / "app")])  # a nested root: paths are relative to it
    where, _ = frames.describe(search.search(dblayer.run, lib.execute,
                                             lambda _: frames.site(here(1))))
    assert where == "db.py:2 run"


def test_an_application_installed_from_pypi_is_the_project_by_its_module_name(project) -> None:
    """The application under test installed into site-packages (ihatemoney from PyPI): its own
    frames are the project when its package is named in project_modules; a longer skip_modules
    prefix (its own database layer) still wins for that part."""
    here = sys._getframe
    site_packages = project / "venv" / "lib" / "site-packages"
    lib = _module(site_packages / "orm" / "core.py", "orm.core",
                  "def execute(get):\n    return get(0)\n")
    dblayer = _module(site_packages / "shop" / "db.py", "shop.db",
                      "def run(execute, get):\n    return execute(get)\n")
    api = _module(site_packages / "shop" / "api.py", "shop.api",
                  "def bills(run, execute, get):\n    return run(execute, get)\n")

    def call():
        return frames.describe(api.bills(dblayer.run, lib.execute,
                                         lambda _: frames.site(here(1))))

    frames.configure([str(project / "elsewhere")])
    where, via = call()  # without it the whole application is a library: no frame of its own
    assert "test_probes_frames.py:" in where and via == "orm/core.py:2 execute"
    frames.configure([str(project / "elsewhere")], project_modules=["shop"])
    assert call() == ("shop/db.py:2 run", "orm/core.py:2 execute")
    frames.configure([str(project / "elsewhere")], ["shop.db"], project_modules=["shop"])
    assert call() == ("shop/api.py:2 bills", "orm/core.py:2 execute")
    # a prefix is a whole module name: "shopping" is not "shop"
    frames.configure([str(project / "elsewhere")], project_modules=["sho"])
    assert call()[0] != "shop/db.py:2 run"


def test_without_a_project_frame_the_library_frame_stands_in(project) -> None:
    lib = _module(project / "site-packages" / "orm.py", "orm",
                  "import sys\ndef execute(site):\n    return site(sys._getframe())\n")
    frames.configure([str(project / "nowhere")])
    where, via = frames.describe(lib.execute(frames.site))
    # the test itself is outside the root (OTHER): it stands in, the library beside it
    assert where.endswith("test_probes_frames.py:" + where.split(":")[-1])
    assert via == "orm.py:3 execute"


def test_relative_roots_are_taken_from_the_working_directory(project, monkeypatch) -> None:
    monkeypatch.chdir(project)
    frames.configure(["src"])
    assert frames.Config.roots == (str(project / "src") + os.sep,)


def test_tables_ignore_common_table_expressions() -> None:
    assert tables("SELECT a FROM t JOIN u ON t.x = u.x") == {"t", "u"}
    assert tables('WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x FROM n) '
                  'SELECT * FROM "items" WHERE (SELECT count(*) FROM n) > 0') == {"items"}
    assert tables("INSERT INTO t (a) VALUES (?)") == {"t"}


def _row(statement: str, calls: float, total: float, where: str) -> dict:
    return {"statement": statement, "operation": "execute", "calls": calls, "total": total,
            "callers": [{"where": where, "via": "", "calls": calls, "total": total}]}


def test_a_rewritten_statement_is_one_changed_row_and_others_stay_added_or_removed() -> None:
    base = [_row("SELECT * FROM t WHERE a = ?", 10, 1.0, "app.py:3 f"),
            _row("SELECT * FROM u", 1 / 3, 0.1, "app.py:9 g"),
            _row("DELETE FROM t", 2, 0.2, "app.py:20 h")]
    cand = [_row("SELECT * FROM t WHERE a LIKE ?", 10, 5.0, "app.py:3 f"),
            _row("SELECT * FROM u", 1 / 3 + 1e-16 * 3, 0.1, "app.py:9 g"),
            _row("SELECT * FROM t WHERE b = ?", 1, 0.1, "app.py:40 k")]
    rows = {r["statement"]: r for r in statement_changes(base, cand)}
    changed = rows["SELECT * FROM t WHERE a LIKE ?"]
    assert changed["change"] == "changed"
    assert changed["baseline_statement"] == "SELECT * FROM t WHERE a = ?"
    assert changed["total_change"] == pytest.approx(4.0) and changed["calls_change"] == 0
    assert rows["SELECT * FROM u"]["change"] == "same"
    assert rows["SELECT * FROM u"]["calls_change"] == 0.0  # no float noise
    assert rows["DELETE FROM t"]["change"] == "removed"  # another verb: not a replacement
    assert rows["SELECT * FROM t WHERE b = ?"]["change"] == "added"  # another caller
    assert "SELECT * FROM t WHERE a = ?" not in rows


@pytest.fixture
def handoff():
    import queue
    from concurrent.futures import thread

    from harness.probes import handoff as module

    saved = (queue.Queue._put, queue.Queue._get, queue.SimpleQueue,
             thread.ThreadPoolExecutor.submit)
    module._patch_queue(queue)
    module._patch_executor(thread)
    yield module
    queue.Queue._put, queue.Queue._get, queue.SimpleQueue, submit = saved
    thread.ThreadPoolExecutor.submit = submit


def _worker_site():
    return frames.describe(frames.site(sys._getframe()))


def test_work_handed_to_a_thread_keeps_the_code_that_queued_it(handoff) -> None:
    import queue
    import threading
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        line = sys._getframe().f_lineno + 1
        where, via = pool.submit(_worker_site).result()
    name = "test_work_handed_to_a_thread_keeps_the_code_that_queued_it"
    assert where == f"tests/test_probes_frames.py:{line} {name}"
    assert via.endswith(" _worker_site")

    for kind in (queue.Queue, queue.SimpleQueue):  # a worker loop, like the peer's
        jobs, done = kind(), queue.Queue()

        def worker(jobs=jobs, done=done) -> None:
            while (job := jobs.get()) is not None:
                done.put(job())

        thread = threading.Thread(target=worker)
        thread.start()
        line = sys._getframe().f_lineno + 1
        jobs.put(_worker_site)
        jobs.put(None)
        thread.join()
        where, via = done.get()
        assert where == f"tests/test_probes_frames.py:{line} {name}", kind
        assert via.endswith(" _worker_site")
    assert frames.describe(frames.site(sys._getframe()))[1] == ""  # this thread: no origin


def test_a_root_may_be_an_installed_package_and_a_venv_inside_a_root_is_not_project(project):
    installed = project / "venv" / "lib" / "site-packages" / "app"
    frames.configure([str(installed)])
    assert frames._classify(str(installed / "views.py"), "app.views") == frames.PROJECT
    assert frames._classify(str(project / "venv" / "lib" / "site-packages" / "orm.py"),
                            "orm") == frames.LIBRARY
    frames.configure([str(project)])
    assert frames._classify(str(project / "src" / "app.py"), "app") == frames.PROJECT
    assert frames._classify(str(project / ".venv" / "site-packages" / "orm.py"),
                            "orm") == frames.LIBRARY
    assert frames._classify(os.__file__, "os") == frames.LIBRARY


def test_queues_with_their_own_get_receive_their_items_unwrapped(handoff) -> None:
    import queue

    class OwnGet(queue.Queue):
        def _get(self):
            return self.queue.popleft()

    class OwnSimpleGet(queue.SimpleQueue):
        def get(self, block=True, timeout=None):
            return queue.SimpleQueue.get(self, block, timeout)

    for kind in (OwnGet, OwnSimpleGet, queue.PriorityQueue, queue.LifoQueue):
        jobs = kind()
        jobs.put(1)
        jobs.put_nowait(2)
        assert sorted([jobs.get(), jobs.get()]) == [1, 2], kind
