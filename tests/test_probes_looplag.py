"""The event-loop lag probe: asyncio loops and the Twisted reactor of unmodified programs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading

import pytest

from harness.experiment import Probes
from harness.probes import collect_probe_data, probe_metrics
from harness.probes.looplag import LagRecorder
from tests.probes_support import free_port, get, probed_env, running


def test_recorder_prefers_the_main_threads_loop_and_clips_early_ticks() -> None:
    recorder = LagRecorder(0.1)
    assert recorder.snapshot() is None
    for _ in range(5):
        recorder.add("asyncio", 0.0, main_thread=False)
    recorder.add("twisted", 0.3, main_thread=True)
    recorder.add("twisted", -0.001, main_thread=True)
    assert recorder.snapshot() == {"kind": "twisted", "interval": 0.1, "samples": [0.3, 0.0]}
    done = threading.Event()
    threading.Thread(target=lambda: (recorder.reset(), done.set())).start()
    done.wait(5)
    assert recorder.snapshot() is None


BLOCKING = """
import asyncio, time

async def main():
    await asyncio.sleep(0.25)
    time.sleep(0.3)           # the loop is blocked: the next tick runs late
    await asyncio.sleep(0.25)

loop = asyncio.new_event_loop()
loop.run_until_complete(asyncio.sleep(0.15))
time.sleep(1.0)               # the loop is stopped, not blocked: no sample may show this
loop.run_until_complete(main())
loop.close()
"""


@pytest.mark.integration
def test_asyncio_lag_shows_blocking_but_not_a_stopped_loop(tmp_path) -> None:
    env = probed_env(tmp_path / "d", Probes(loop_lag=True, loop_lag_interval=0.05))
    done = subprocess.run([sys.executable, "-c", BLOCKING], env=env, cwd=tmp_path, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lag = collect_probe_data(tmp_path / "d")["loop_lag"]
    assert lag["kind"] == "asyncio" and lag["interval"] == 0.05
    assert len(lag["samples"]) >= 5
    assert 0.25 <= max(lag["samples"]) < 0.9  # the 0.3 s block, not the 1 s pause
    assert sorted(lag["samples"])[len(lag["samples"]) // 2] < 0.05


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("twistd") is None, reason="twistd (Twisted) is not installed")
def test_twisted_web_server_unmodified_gets_lag_samples(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>hello</p>")
    port = free_port()
    config = Probes(sqlite=True, loop_lag=True, loop_lag_interval=0.05, flush_interval=60.0)
    env = probed_env(tmp_path / "d", config)  # data only from the exit path
    command = [shutil.which("twistd"), "-n", "--pidfile", str(tmp_path / "twistd.pid"), "web",
               "--listen", f"tcp:{port}:interface=127.0.0.1", "--path", str(site)]
    base = f"http://127.0.0.1:{port}"
    with running(command, env, tmp_path, base + "/index.html", tmp_path / "twistd.log"):
        for _ in range(20):
            assert b"hello" in get(base + "/index.html")
        threading.Event().wait(0.5)  # let the reactor tick a few times before it stops
    probes = collect_probe_data(tmp_path / "d")
    assert "warnings" not in probes, probes.get("warnings")
    lag = probes["loop_lag"]
    assert lag["kind"] == "twisted" and len(lag["samples"]) >= 5
    metrics = probe_metrics(probes, 20)
    assert 0.0 <= metrics["loop_lag_mean"] <= metrics["loop_lag_p99"] <= metrics["loop_lag_max"]
