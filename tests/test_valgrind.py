"""Tests of harness.valgrind: parsing cachegrind/callgrind files, the command line, availability."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import valgrind
from harness.errors import ResultsFormatError

DATA = Path(__file__).parent / "data"
needs_valgrind = pytest.mark.needs("valgrind")
TINY = "d = {str(i): i for i in range(2000)}; sum(d.values())"


@pytest.mark.parametrize("name", ["cachegrind.small.out", "callgrind.small.out"])
def test_parse_committed_files_gives_total_and_self_cost_per_function(name: str) -> None:
    profile = valgrind.parse((DATA / name).read_text(), name)
    assert profile.total == 1170
    by_function = {key.rpartition(":")[2]: ir for key, ir in profile.functions.items()}
    # callgrind: the inclusive cost after `calls=` belongs to the callee, fn'2 is the same function
    assert by_function == {"_PyEval_EvalFrameDefault": 1003, "_Py_dict_lookup": 160,
                           "dict_ass_sub": 7}
    assert sum(profile.functions.values()) == profile.total


def test_callgrind_names_keep_the_file_of_the_function_not_the_inlined_file() -> None:
    profile = valgrind.parse((DATA / "callgrind.small.out").read_text())
    assert "/build/Python-3.11.7/Python/ceval.c:_PyEval_EvalFrameDefault" in profile.functions


def test_parse_without_summary_says_the_run_was_cut_short() -> None:
    with pytest.raises(ResultsFormatError, match="SIGTERM"):
        valgrind.parse("events: Ir\nfl=a.c\nfn=f\n1 5\n", "x.out")


def test_parse_without_events_names_the_file() -> None:
    with pytest.raises(ResultsFormatError, match="x.out"):
        valgrind.parse("summary: 5\n", "x.out")


def test_read_profiles_sums_files_of_a_process_tree(tmp_path: Path) -> None:
    for pid in (11, 12):
        (tmp_path / f"cachegrind.out.{pid}").write_text((DATA / "cachegrind.small.out").read_text())
    profile = valgrind.read_profiles(tmp_path.glob("cachegrind.out.*"))
    assert profile.total == 2340
    assert profile.functions["Python/ceval.c:_PyEval_EvalFrameDefault"] == 2006


def test_read_profiles_without_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsFormatError, match="no valgrind output"):
        valgrind.read_profiles(tmp_path.glob("*.out"))


def test_command_turns_cache_simulation_off_for_cachegrind(tmp_path: Path) -> None:
    argv = valgrind.command("cachegrind", tmp_path / "c.%p", ["python", "-c", "pass"])
    assert argv[0] == "valgrind" and "--cache-sim=no" in argv
    assert f"--cachegrind-out-file={tmp_path / 'c.%p'}" in argv
    assert argv[-3:] == ["python", "-c", "pass"]
    assert f"--callgrind-out-file={tmp_path}" in " ".join(
        valgrind.command("callgrind", tmp_path, ["x"]))
    with pytest.raises(ValueError, match="cachegrind"):
        valgrind.command("massif", tmp_path, ["x"])


def test_windows_is_reported_unavailable_with_a_reason() -> None:
    reason = valgrind.unavailable_reason("win32")
    assert reason is not None and "win32" in reason


def _run_tiny(tool: str, out_dir: Path) -> valgrind.Profile:
    out_dir.mkdir()
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    argv = valgrind.command(tool, out_dir / "out.%p", [sys.executable, "-S", "-c", TINY])
    subprocess.run(argv, check=True, env=env, timeout=120, capture_output=True)
    return valgrind.read_profiles(out_dir.glob("out.*"))


@needs_valgrind
@pytest.mark.slow
@pytest.mark.integration
def test_real_cachegrind_runs_are_identical_with_a_fixed_hash_seed(tmp_path: Path) -> None:
    first = _run_tiny("cachegrind", tmp_path / "a")
    second = _run_tiny("cachegrind", tmp_path / "b")
    assert first.total > 1_000_000
    assert first.total == second.total
    assert sum(first.functions.values()) == first.total


@needs_valgrind
@pytest.mark.slow
@pytest.mark.integration
def test_real_callgrind_file_parses_to_its_own_total(tmp_path: Path) -> None:
    profile = _run_tiny("callgrind", tmp_path / "c")
    assert sum(profile.functions.values()) == profile.total
    assert any(name.endswith(":_PyEval_EvalFrameDefault") for name in profile.functions)
