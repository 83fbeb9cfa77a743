"""On the reference subject, the lag probe must show what the thesis showed: a database worker
thread keeps the event loop responsive, queries on the loop do not (same load, same data)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.experiment import Probes
from harness.probes import collect_probe_data, probe_metrics
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
