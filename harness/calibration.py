"""Machine-speed calibration: a fixed workload timed in a side process around each round.

The same deterministic work (a pure-Python integer loop and a memory copy) is timed just before a
round's measured window and just after it, in a separate process with the subject idle, so it
never loads what is measured. Its times say how fast the machine was at that moment; the paired
timing test can use them as a covariate (harness.covariate). CPU steal and frequency are recorded
where the OS gives them, and named as unavailable with the reason where it does not (never 0).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import psutil

LOOP_ITERATIONS = 200_000  # about 20 ms of pure-Python work on our 2-core agents
COPY_BYTES = 16 * 1024 * 1024  # larger than the last-level cache: bound by memory bandwidth
COPIES = 1
TIMEOUT = 30.0  # seconds; a side process that takes longer is recorded as failed, not awaited

# Runs with -I -S: no site packages, no user code, the same work for every round and side.
_WORKLOAD = f"""
import json, time
def loop(n):
    x, acc = 12345, 0
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        acc ^= x >> 3
    return acc
def copy(size, copies):
    buf = bytearray(size)
    for _ in range(copies):
        buf = bytearray(buf)
    return len(buf)
out = {{}}
for name, work in (("loop", lambda: loop({LOOP_ITERATIONS})),
                   ("copy", lambda: copy({COPY_BYTES}, {COPIES}))):
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    out[name] = {{"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}}
print(json.dumps(out))
"""


def time_workload(python: str | None = None) -> dict[str, Any]:
    """One run of the calibration workload in a side process: {"loop": {"wall", "cpu"},
    "copy": {...}} in seconds, or {"error": why} when the side process failed."""
    try:
        done = subprocess.run([python or sys.executable, "-I", "-S", "-c", _WORKLOAD],
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"the calibration process did not finish: {exc}"}
    if done.returncode != 0:
        return {"error": f"the calibration process exited {done.returncode}: "
                         f"{done.stderr.strip()[-200:]}"}
    try:
        return dict(json.loads(done.stdout))
    except ValueError:
        return {"error": f"the calibration process printed no result: {done.stdout[-200:]!r}"}


def _cpu_times() -> tuple[float | None, float, str | None]:
    """(steal seconds or None, total CPU seconds, why steal is unavailable) over all CPUs."""
    times = psutil.cpu_times()
    total = float(sum(times))
    steal = getattr(times, "steal", None)
    if steal is None:
        return None, total, f"psutil.cpu_times() has no steal field on {sys.platform}"
    return float(steal), total, None


def _frequency() -> tuple[float | None, str | None]:
    """(current CPU frequency in MHz, why unavailable)."""
    try:
        freq = psutil.cpu_freq()
    except (AttributeError, NotImplementedError, OSError, RuntimeError) as exc:
        return None, f"psutil.cpu_freq() failed: {exc}"
    if freq is None or not freq.current:
        return None, "psutil.cpu_freq() reports nothing here (virtual machines often hide it)"
    return float(freq.current), None


class Calibrator:
    """Times the workload before and after one round's measured window; `record()` is the
    Round's `calibration` value."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python
        self.runs: dict[str, dict[str, Any]] = {}
        self.frequency: dict[str, float] = {}
        self.unavailable: dict[str, str] = {}
        self._cpu: dict[str, tuple[float | None, float]] = {}
        self.seconds = 0.0

    def _take(self, when: str) -> None:
        started = time.perf_counter()
        steal, total, why = _cpu_times()
        self._cpu[when] = (steal, total)
        if why:
            self.unavailable["steal"] = why
        mhz, why = _frequency()
        if mhz is not None:
            self.frequency[when] = mhz
        elif why:
            self.unavailable["frequency"] = why
        self.runs[when] = time_workload(self.python)
        self.seconds += time.perf_counter() - started

    def before(self) -> None:
        self._take("before")

    def after(self) -> None:
        self._take("after")

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.runs, "seconds": round(self.seconds, 4)}
        if "before" in self._cpu and "after" in self._cpu:
            (s0, t0), (s1, t1) = self._cpu["before"], self._cpu["after"]
            if s0 is not None and s1 is not None and t1 > t0:
                out["steal"] = (s1 - s0) / (t1 - t0)  # share of all CPUs' time stolen
        if self.frequency:
            out["frequency_mhz"] = dict(self.frequency)
        if self.unavailable:
            out["unavailable"] = dict(self.unavailable)
        return out


def speed(calibration: dict[str, Any] | None, piece: str = "loop", clock: str = "wall",
          when: tuple[str, ...] = ("before", "after")) -> float | None:
    """The calibration's time in seconds for one piece and clock, the geometric mean over the
    runs named in `when`; None when any of them is missing or failed."""
    if not calibration:
        return None
    values = []
    for name in when:
        run = calibration.get(name)
        value = run.get(piece, {}).get(clock) if isinstance(run, dict) else None
        if not isinstance(value, (int, float)) or value <= 0:
            return None
        values.append(float(value))
    product = 1.0
    for value in values:
        product *= value
    return product ** (1.0 / len(values))
