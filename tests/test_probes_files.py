"""Where the bytes went: the counting open() behaves like io.open, files are sorted by kind, the
probes' own output is left out, and the breakdown says "+N B per request, all in the log file"."""

from __future__ import annotations

import builtins
import io
import os
import sqlite3

import pytest

from harness.compare import Comparison
from harness.metrics import METRICS
from harness.probes import breakdown_details, diskio
from harness.probes import sqlite as sqlite_probe
from harness.probes.summary import file_metrics
from harness.results import ExperimentInfo, RequestLog, Results, Round
from harness.view import findings
from tests.comparisons import metric


@pytest.fixture
def files(tmp_path):
    saved = (builtins.open, io.open)
    (tmp_path / "state").mkdir()
    (tmp_path / "probes").mkdir()
    diskio.install(str(tmp_path / "probes"), str(tmp_path / "state"))
    diskio.FILES.reset()
    sqlite_probe.install()
    yield diskio.FILES
    builtins.open, io.open = saved
    diskio.ENABLED = False
    sqlite_probe.uninstall()
    diskio.FILES.reset()


def _rows(stats) -> dict[str, dict]:
    return {row["path"]: row for row in stats.snapshot()["files"]}


def test_the_counting_open_behaves_like_io_open(files, tmp_path) -> None:
    path = tmp_path / "state" / "data.txt"
    with open(path, "w", encoding="utf-8", newline="\r\n") as handle:
        assert isinstance(handle, io.TextIOWrapper) and handle.mode == "w"
        handle.write("é\n")
    assert path.read_bytes() == "é\r\n".encode()
    with open(path, "ab") as handle:
        assert isinstance(handle, io.BufferedWriter) and handle.mode == "ab"
        handle.write(b"tail")
    with open(path, "r+b") as handle:
        assert isinstance(handle, io.BufferedRandom)
        assert handle.read() == "é\r\ntail".encode()
    with open(path, "rb", buffering=0) as handle:
        assert isinstance(handle, io.FileIO) and handle.readall() == "é\r\ntail".encode()
    assert path.read_text(encoding="utf-8") == "é\ntail"  # pathlib goes through io.open
    with pytest.raises(FileNotFoundError):
        open(tmp_path / "missing.txt")
    with pytest.raises(ValueError):
        open(path, "rw")  # an invalid mode: the real open's error
    fd = os.open(path, os.O_RDONLY)
    with open(fd, "rb") as handle:  # a descriptor: passed through, not counted
        assert handle.read(1)
    row = _rows(files)["data.txt"]
    assert row["kind"] == "state"
    assert row["write_bytes"] == len("é\r\n".encode()) + 4
    assert row["read_bytes"] == 4 + 3 * len("é\r\ntail".encode())  # read_bytes, then three reads


def test_kinds_and_the_probes_own_output(files, tmp_path) -> None:
    (tmp_path / "state" / "logs").mkdir()
    for name in ("state/core.log", "state/logs/x.txt", "state/app.db-journal", "elsewhere.bin",
                 "probes/sqlite-1.json"):
        with open(tmp_path / name, "w", encoding="utf-8") as handle:
            handle.write("12345")
    db = sqlite3.connect(tmp_path / "state" / "my.sqlite")
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    rows = _rows(files)
    kinds = {path: row["kind"] for path, row in rows.items()}
    assert kinds["core.log"] == kinds["logs/x.txt"] == "log"
    assert kinds["app.db-journal"] == "database"
    assert kinds[str(tmp_path / "elsewhere.bin")] == "other"
    assert not any("sqlite-1.json" in path for path in rows)  # the probes' own: never counted
    if diskio.thread_written() is not None:  # Linux: SQLite's own writes, charged to its file
        assert kinds["my.sqlite"] == "database" and rows["my.sqlite"]["write_bytes"] > 0
    metrics = file_metrics(files.snapshot(), 5)
    assert metrics["log_write_bytes_per_request"] == 2.0
    assert metrics["other_write_bytes_per_request"] == 1.0


def _side(label: str, log_bytes: int, db_bytes: int, requests: int = 100) -> Results:
    files = {"files": [{"path": "core.log", "kind": "log", "read_bytes": 0,
                        "write_bytes": log_bytes, "reads": 0, "writes": requests},
                       {"path": "app.db", "kind": "database", "read_bytes": 0,
                        "write_bytes": db_bytes, "reads": 0, "writes": 10}],
             "process": {"read_bytes": 0, "write_bytes": log_bytes + db_bytes + 5000 + 700},
             "probe_bytes": 700, "database_measured": True}
    log = RequestLog(endpoint=("a",) * requests, intended=(0.0,) * requests,
                     sent=(0.0,) * requests, latency=(0.01,) * requests,
                     service=(0.01,) * requests, status=(200,) * requests,
                     nbytes=(50,) * requests, error=(None,) * requests)
    rounds = tuple(Round(index=i, side=label, instance=1, step=None, started_at="t",
                         duration=1.0, requests=log, probes={"files": files}) for i in range(2))
    return Results(label=label, experiment=ExperimentInfo(name="e", path="e.toml", sha256="0"),
                   environment={}, rounds=rounds, created_at="t")


def test_an_extra_log_line_per_request_is_found_in_the_log_file() -> None:
    details = breakdown_details(_side("baseline", 6400, 4096), _side("candidate", 8900, 4096))
    files = details["files"]
    assert files["headline"] == "+25 B written per request, all in the log file core.log"
    (change,) = files["changes"]
    assert change["path"] == "core.log" and change["write_change"] == 25.0
    side = files["candidate"]
    assert side["kinds"]["log"]["write_bytes"] == 89.0
    assert side["kinds"]["database"]["write_bytes"] == 40.96
    assert side["unattributed_write_bytes"] == 50.0  # sockets and the like, not hidden
    assert side["probe_bytes"] == 7.0  # shown apart, never the subject's


def test_bytes_written_by_default_are_shown_not_gated_and_database_io_gates() -> None:
    assert not METRICS["write_chars_per_request"].gate
    assert not METRICS["log_write_bytes_per_request"].gate
    assert METRICS["db_write_bytes_per_request"].gate


def test_the_finding_for_more_bytes_written_names_the_log_file() -> None:
    # one log line more per request: every byte metric moved; one finding, the most specific
    base, cand = _side("baseline", 6400, 4096), _side("candidate", 8900, 4096)
    details = breakdown_details(base, cand)
    metrics = (
        metric("write_bytes_per_hour", "regression", 1.8e6, 3.6e6),
        metric("write_chars_per_request", "regression", 64.0, 89.0),
        metric("log_write_bytes_per_request", "regression", 64.0, 89.0),
        metric("db_write_bytes_per_request", "unchanged", 40.96, 40.96),
    )
    comparison = Comparison(baseline=base, candidate=cand, metrics=metrics, overall="pass",
                            headline="", reasons=(), warnings=(), details=details)
    (found,) = findings(comparison)
    assert found.text.startswith("log writes / request: ")
    assert found.causes == ("+25 B written per request, all in the log file core.log",)
