"""Resource sampling of a process tree: cumulative columns, exited children, missing probes."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from harness.process import start_process, stop_process_tree
from harness.results import RESOURCE_COLUMNS
from harness.sampler import ResourceSampler

pytestmark = pytest.mark.integration

# A parent that writes to a file and starts a short-lived child that burns CPU and exits.
WORKER = (
    "import subprocess, sys, time\n"
    "burn = 'import time\\nend = time.process_time() + 0.3\\n'\n"
    "burn += 'while time.process_time() < end: pass'\n"
    "subprocess.Popen([sys.executable, '-c', burn])\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    for _ in range(200):\n"
    "        f.write('x' * 10000); f.flush(); time.sleep(0.005)\n"
    "time.sleep(30)\n"
)


@pytest.fixture
def worker(tmp_path):
    proc = start_process([sys.executable, "-c", WORKER, str(tmp_path / "out")],
                         stdout=subprocess.DEVNULL)
    yield proc
    stop_process_tree(proc, timeout=2)


def test_cumulative_columns_never_drop_while_a_child_exits(worker):
    sampler = ResourceSampler(worker.pid, interval=0.05)
    sampler.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(psutil.Process(worker.pid).children()) == 0:
        time.sleep(0.01)
    time.sleep(1.5)  # the child burns 0.3 s of CPU and exits; the parent writes 2 MB
    series = sampler.stop()
    assert len(series.t) > 5 and list(series.t) == sorted(series.t)
    for name in ("cpu_user", "cpu_system", "ctx_switches", *[
            c for c in ("read_chars", "write_chars") if c not in series.unavailable]):
        values = series.columns[name]
        assert all(b >= a for a, b in zip(values, values[1:], strict=False)), name
    cpu = series.columns["cpu_user"][-1] + series.columns["cpu_system"][-1]
    assert cpu >= 0.25  # the exited child's CPU still counts
    assert min(series.columns["rss"]) > 0 and min(series.columns["threads"]) >= 1
    if "write_chars" not in series.unavailable:
        assert series.columns["write_chars"][-1] - series.columns["write_chars"][0] >= 1e6


def test_a_platform_without_io_counters_records_them_as_unavailable(worker, monkeypatch):
    monkeypatch.delattr(psutil.Process, "io_counters", raising=False)
    sampler = ResourceSampler(worker.pid, interval=0.05)
    sampler.start()
    time.sleep(0.2)
    series = sampler.stop()
    assert set(series.unavailable) == {"read_bytes", "write_bytes", "read_chars", "write_chars"}
    assert not set(series.columns) & set(series.unavailable)
    assert set(series.columns) | set(series.unavailable) == set(RESOURCE_COLUMNS)


def test_times_are_measured_from_the_given_origin(worker):
    origin = time.monotonic() + 0.5
    sampler = ResourceSampler(worker.pid, interval=10, origin=origin)
    sampler.start()
    series = sampler.stop()
    assert len(series.t) == 2 and series.t[0] < 0  # the opening row comes before the origin


def test_a_vanished_process_keeps_its_last_totals(worker):
    sampler = ResourceSampler(worker.pid, interval=10)
    sampler.start()
    time.sleep(0.3)
    sampler.sample()
    stop_process_tree(worker, timeout=2)
    series = sampler.stop()
    assert series.columns["rss"][-1] == 0
    assert series.columns["cpu_user"][-1] == series.columns["cpu_user"][-2]
