"""Which Python functions changed: the profile probe and the diff between two sides."""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from harness.experiment import load_experiment
from harness.pyfunctions import _where, python_function_changes, run_function_profile
from harness.view import findings, python_functions_view
from tests.comparisons import comparison as comparison_fixture
from tests.comparisons import metric

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


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="the profile is read with SIGUSR1")
def test_work_added_to_one_function_of_the_peer_is_named_first(tmp_path):
    """Issue 12: a test commit that adds work to one Python function of the reference peer
    (CHANNELS_EXTRA_WORK: a hash loop in tuning.extra_work, called from the /channels handler);
    the report's Python function list and the finding's likely cause name it first."""
    tuning_rel = Path("subjects") / "peer" / "tuning.py"
    sides = {}
    for label, work in (("baseline", 0), ("candidate", 300)):
        tree = tmp_path / f"tree-{label}"
        for part in ("subjects", "experiments"):
            shutil.copytree(ROOT / part, tree / part,
                            ignore=shutil.ignore_patterns("__pycache__"))
        tuning = tree / tuning_rel
        text = tuning.read_text()
        assert "CHANNELS_EXTRA_WORK = 0" in text
        tuning.write_text(text.replace("CHANNELS_EXTRA_WORK = 0", f"CHANNELS_EXTRA_WORK = {work}"))
        loaded = load_experiment(tree / "experiments" / "api-quick.toml",
                                 overrides={"channels": "50", "torrents": "500"})
        sides[label] = run_function_profile(loaded, work_dir=tmp_path / label, project_root=tree,
                                            python=sys.executable)
        assert sides[label]["available"], sides[label]["reason"]
    line = next(n for n, text in enumerate((ROOT / tuning_rel).read_text().splitlines(), 1)
                if text.startswith("def extra_work("))
    function = f"subjects/peer/tuning.py:{line} extra_work"
    rows = python_function_changes(sides["baseline"], sides["candidate"])
    assert rows[0]["function"] == function, rows[:3]
    assert rows[0]["endpoint"] == "channels"
    assert rows[0]["calls_baseline"] == 0.0 and rows[0]["calls_candidate"] == 1.0
    assert rows[0]["unit"] == "lines" and rows[0]["change"] >= 2 * 300  # loop and body, each turn
    # as the report presents it: the first row of its function list, the finding's cause
    shown = python_functions_view({"python_functions": rows})
    assert shown is not None and shown[0]["function"] == function
    cpu = metric("cpu_per_request", "regression", 0.0030, 0.0036)
    comparison = replace(comparison_fixture(with_details=False), metrics=(cpu,),
                         details={"python_functions": rows})
    (found,) = findings(comparison)
    assert found.causes[0].startswith(f"Python function {function}: +")
