"""On the reference subject, the lag probe must show what the thesis showed: a database worker
thread keeps the event loop responsive, queries on the loop do not (same load, same data)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.experiment import Probes
from harness.probes import collect_probe_data, mark_measuring, probe_metrics
from tests.probes_support import ROOT, free_port, get, probed_env, running

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("subjects.peer") is None,
    reason="subjects.peer (the reference subject) is not in this checkout yet; it arrives when "
           "the `subject` branch is merged, and this test then runs",
)

QUERIES = ("channel", "torrent", "ubuntu", "music", "linux", "video", "a", "e")


def _load(base: str) -> None:
    """The same bounded load for both modes: searches (full scans) and torrent pages, 4 at once."""
    urls = [f"{base}/search?q={QUERIES[i % len(QUERIES)]}" for i in range(48)]
    urls += [f"{base}/channels/{1 + i % 50}/torrents?page=1&size=50" for i in range(48)]
    with ThreadPoolExecutor(4) as pool:
        for body in pool.map(get, urls):
            assert body


def _lag(tmp_path, state, mode: str) -> dict:
    data = tmp_path / f"probes-{mode}"
    env = probed_env(data, Probes(sqlite=True, loop_lag=True, loop_lag_interval=0.02))
    port = free_port()
    command = [sys.executable, "-m", "subjects.peer", "serve", "--state-dir", str(state),
               "--port", str(port), "--db", mode, "--sync-interval", "0"]
    base = f"http://127.0.0.1:{port}"
    with running(command, env, ROOT, base + "/health", tmp_path / f"{mode}.log"):
        _load(base)
    probes = collect_probe_data(data)
    assert probes["loop_lag"]["kind"] == "asyncio" and "warnings" not in probes
    return probe_metrics(probes, 96)


@pytest.mark.integration
@pytest.mark.slow
def test_worker_mode_shows_less_loop_lag_than_blocking_mode(tmp_path) -> None:
    state = tmp_path / "state"
    subprocess.run([sys.executable, "-m", "subjects.peer", "seed", "--state-dir", str(state),
                    "--channels", "300", "--torrents", "30000"], cwd=ROOT, check=True,
                   timeout=300, capture_output=True)
    blocking = _lag(tmp_path, state, "blocking")
    worker = _lag(tmp_path, state, "worker")
    assert blocking["queries_total"] == worker["queries_total"]  # the same work was done
    # The mean, not a tail percentile: a busy neighbour can stretch either mode's worst ticks.
    assert worker["loop_lag_mean"] < blocking["loop_lag_mean"]


def _blocking(tmp_path, state, mode: str) -> tuple[dict, dict]:
    data = tmp_path / f"blocking-{mode}"
    env = probed_env(data, Probes(blocking=True, flush_interval=60.0))
    port = free_port()
    command = [sys.executable, "-m", "subjects.peer", "serve", "--state-dir", str(state),
               "--port", str(port), "--db", mode, "--sync-interval", "0"]
    base = f"http://127.0.0.1:{port}"
    with running(command, env, ROOT, base + "/health", tmp_path / f"blocking-{mode}.log"):
        for _ in range(3):  # warm-up: not counted
            get(f"{base}/channels")
        assert mark_measuring([data]) == []
        for i in range(10):
            get(f"{base}/channels")
            get(f"{base}/search?q={QUERIES[i % len(QUERIES)]}")
    probes = collect_probe_data(data)
    assert "warnings" not in probes, probes.get("warnings")
    return probes["blocking"], probe_metrics(probes, 20)


@pytest.mark.integration
@pytest.mark.slow
def test_blocking_mode_runs_every_statement_on_the_loop_and_worker_mode_none(tmp_path) -> None:
    state = tmp_path / "state"
    subprocess.run([sys.executable, "-m", "subjects.peer", "seed", "--state-dir", str(state),
                    "--channels", "50", "--torrents", "2000"], cwd=ROOT, check=True,
                   timeout=300, capture_output=True)
    blocking, blocking_metrics = _blocking(tmp_path, state, "blocking")
    worker, worker_metrics = _blocking(tmp_path, state, "worker")
    # exact counts, not timing: one statement per request on the loop, none with the worker
    assert blocking_metrics["loop_queries_per_request"] >= 1.0
    assert worker_metrics["loop_queries_per_request"] == 0.0
    assert "sqlite" not in worker["kinds"]
    callers = {s["where"] for s in blocking["sites"] if s["kind"] == "sqlite"}
    assert any(w.startswith("subjects/peer/store.py:") and w.endswith(" search_torrents")
               for w in callers)
    # the access log line is written on the loop in both modes: one write per request
    for side in (blocking, worker):
        assert side["kinds"]["file_write"]["calls"] == 20
