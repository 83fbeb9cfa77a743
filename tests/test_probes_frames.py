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
