"""results.json: round trip, refusal of other versions, atomic writes."""

from __future__ import annotations

import json

import pytest

from harness import files
from harness.errors import ResultsFormatError
from harness.results import FORMAT_VERSION, RequestLog, load_results, save_results


def test_round_trip_keeps_every_sample(tmp_path, results):
    path = tmp_path / "results.json"
    save_results(results, path)
    assert load_results(path) == results
    assert json.loads(path.read_text())["format_version"] == FORMAT_VERSION


def test_unknown_version_is_refused_with_the_fix(tmp_path, results):
    data = results.to_json()
    data["format_version"] = FORMAT_VERSION + 1
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsFormatError, match=r"format_version is 3.*Re-run"):
        load_results(path)


def test_version_1_files_still_load(tmp_path, results):
    data = results.to_json()
    data["format_version"] = 1
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    assert load_results(path) == results


def test_truncated_file_names_the_file_and_line(tmp_path, results):
    path = tmp_path / "results.json"
    save_results(results, path)
    path.write_text(path.read_text()[:200])
    with pytest.raises(ResultsFormatError, match=r"results.json: line \d+: not valid JSON"):
        load_results(path)


def test_missing_key_is_a_format_error(tmp_path, results):
    data = results.to_json()
    del data["rounds"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsFormatError, match="not a complete results file"):
        load_results(path)


def test_columns_of_unequal_length_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        RequestLog(endpoint=("a",), intended=(0.0, 1.0))


def test_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text("old")

    def broken_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_json(path, {"new": 1})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
