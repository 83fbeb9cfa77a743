"""Which Python functions changed: the profile probe and the diff between two sides."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from harness.experiment import load_experiment
from harness.pyfunctions import _where, python_function_changes, run_function_profile

ROOT = Path(__file__).resolve().parents[1]


def _side(rows: dict[str, list[tuple[str, float, float]]]) -> dict:
    return {"endpoints": {ep: [{"function": f, "calls": c, "lines": n} for f, c, n in items]
                          for ep, items in rows.items()}}


def test_changes_rank_the_projects_functions_first_and_prefer_line_events():
    base = _side({"search": [("app/search.py:10 rank", 1.0, 40.0),
                             ("stdlib/asyncio/base_events.py:1845 _run_once", 6.0, 140.0)]})
    cand = _side({"search": [("app/search.py:10 rank", 1.0, 90.0),
                             ("stdlib/asyncio/base_events.py:1845 _run_once", 7.0, 300.0),
                             ("app/search.py:30 helper", 2.0, 0.0)]})
    rows = python_function_changes(base, cand)
    assert [(r["function"], r["unit"], r["change"]) for r in rows] == [
        ("app/search.py:10 rank", "lines", 50.0),
        ("app/search.py:30 helper", "calls", 2.0),
        ("stdlib/asyncio/base_events.py:1845 _run_once", "lines", 160.0),
    ]
    assert python_function_changes(None, cand) == []


def test_where_names_project_files_relative_and_installed_code_by_its_kind(tmp_path):
    assert _where(str(tmp_path / "app" / "x.py"), tmp_path) == "app/x.py"
    assert _where("/usr/lib/python3.11/site-packages/aiohttp/web.py", tmp_path) == \
        "site-packages/aiohttp/web.py"
    assert _where("/usr/lib/python3.11/asyncio/events.py", tmp_path) == "stdlib/asyncio/events.py"


def test_an_environment_inside_the_project_is_installed_code_not_the_project(tmp_path):
    # harness perf builds each side's venv under .perf-cache/ in the project: its packages must
    # not be listed (and ranked) as the project's own functions
    inside = tmp_path / ".perf-cache" / "envs" / "x" / "lib" / "python3.11" / "site-packages"
    assert _where(str(inside / "aiohttp" / "web_protocol.py"), tmp_path) == \
        "site-packages/aiohttp/web_protocol.py"


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="the profile is read with SIGUSR1")
def test_the_function_given_more_work_is_named_first(tmp_path):
    experiment = Path("tests/data/endpoints.toml")
    sides = {}
    for label, work in (("baseline", "0"), ("candidate", "20")):
        loaded = load_experiment(ROOT / experiment, overrides={"rank_work": work})
        sides[label] = run_function_profile(loaded, work_dir=tmp_path / label, project_root=ROOT,
                                            python=sys.executable)
        assert sides[label]["available"], sides[label]["reason"]
    rows = python_function_changes(sides["baseline"], sides["candidate"])
    top = rows[0]
    assert top["endpoint"] == "search"
    assert top["function"].startswith("tests/data/endpoints_app.py:")
    assert top["function"].endswith(" rank_results")
    assert top["unit"] == "lines" and top["change"] == pytest.approx(40.0)  # 2 lines x 20
    assert top["calls_baseline"] == top["calls_candidate"] == 1.0
    left = [p for p in psutil.process_iter(["cmdline"])
            if "tests.data.endpoints_app" in " ".join(p.info["cmdline"] or [])]
    assert not left
