"""Resource sampling of a subject's process tree with psutil, in a background thread.

Cumulative counters (CPU seconds, I/O bytes, context switches) are summed over every process ever
seen in the tree, each at its last sampled value, so a worker that exits does not make the totals
drop. Levels (RSS, threads) are summed over the processes alive at the tick. A column the platform
does not provide (macOS has no io_counters; Windows has no read_chars) is listed as unavailable,
never filled with zeros that would read as "no I/O".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

from harness.results import RESOURCE_COLUMNS, ResourceSeries

CUMULATIVE = ("cpu_user", "cpu_system", "read_bytes", "write_bytes", "read_chars", "write_chars",
              "ctx_switches")
IO_COLUMNS = ("read_bytes", "write_bytes", "read_chars", "write_chars")


def _read(proc: psutil.Process, missing: set[str]) -> dict[str, float]:
    """One process's values; names it cannot provide on this platform go into `missing`."""
    values: dict[str, float] = {}
    with proc.oneshot():
        cpu = proc.cpu_times()
        values["cpu_user"], values["cpu_system"] = cpu.user, cpu.system
        values["rss"] = float(proc.memory_info().rss)
        values["threads"] = float(proc.num_threads())
        try:
            ctx = proc.num_ctx_switches()
            values["ctx_switches"] = float(ctx.voluntary + ctx.involuntary)
        except (AttributeError, NotImplementedError, psutil.AccessDenied):
            missing.add("ctx_switches")
        io_counters = getattr(proc, "io_counters", None)
        try:
            io = io_counters() if io_counters is not None else None
        except (NotImplementedError, psutil.AccessDenied):
            io = None
        for name in IO_COLUMNS:
            value = getattr(io, name, None)
            if value is None:
                missing.add(name)
            else:
                values[name] = float(value)
    return values


class ResourceSampler:
    """Samples the tree rooted at `pid` every `interval` s between start() and stop().

    `origin` is the time.monotonic() value that `t` is measured from (the workload's start, the
    same clock asyncio uses), so resource rows line up with request times.
    """

    def __init__(self, pid: int, interval: float, origin: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pid, self.interval, self.clock = pid, interval, clock
        self.origin = clock() if origin is None else origin
        self._last: dict[tuple[int, float], dict[str, float]] = {}  # (pid, create_time) -> values
        self._missing: set[str] = set()
        self._rows: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        """Take one row now."""
        alive: dict[str, float] = {"rss": 0.0, "threads": 0.0}
        for proc in self._tree():
            try:
                key = (proc.pid, proc.create_time())
                values = _read(proc, self._missing)
            except psutil.Error:
                continue  # exited between listing and reading
            self._last[key] = values
            alive["rss"] += values["rss"]
            alive["threads"] += values["threads"]
        row = dict(alive)
        for name in CUMULATIVE:
            row[name] = sum(v.get(name, 0.0) for v in self._last.values())
        with self._lock:
            self._rows.append((self.clock() - self.origin, row))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        """Take the opening row at once, then sample in a daemon thread."""
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> ResourceSeries:
        """Stop the thread, take the closing row, and return the series."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return self.series()

    def series(self) -> ResourceSeries:
        with self._lock:
            rows = list(self._rows)
        unavailable = tuple(c for c in RESOURCE_COLUMNS if c in self._missing)
        columns = {
            name: tuple(row[name] for _, row in rows)
            for name in RESOURCE_COLUMNS
            if name not in self._missing
        }
        return ResourceSeries(interval=self.interval, t=tuple(t for t, _ in rows),
                              columns=columns, unavailable=unavailable)
