"""Writes the probes' data inside the subject: periodically, at exit and on SIGTERM, atomically.

Runs inside the subject, standard library only. Each process writes its own files
(`NAME-PID.json`), so a subject that forks or starts Python children never has two writers on one
file; harness.probes.inject merges them.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: subjects may run Pythons older than the harness
    from typing import Protocol

    class Source(Protocol):
        """A probe's aggregate: a JSON snapshot (None while empty), a reset for forked children."""

        def snapshot(self) -> Any: ...

        def reset(self) -> None: ...


MARK = "measure"  # the harness creates it when the warm-up ends (harness.probes.inject)
FLUSH = "flush"  # the harness creates it (anew each time) to have the counts so far written now
MARK_POLL = 0.05  # seconds between two looks for it


def write_json_atomic(path: str, value: Any) -> int:
    """Temporary file in the same folder, then a rename: readers see all or nothing. Returns the
    bytes written."""
    directory = os.path.dirname(path)
    data = json.dumps(value, separators=(",", ":")).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return len(data)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class ProbeWriter:
    """Flushes every source to `directory` every `interval` seconds, at exit and on SIGTERM.

    Once the harness marks the start of measuring (the MARK file, after the warm-up), every source
    starts from zero and the periodic writes stop until exit, so the probes' own output never
    counts as bytes the subject wrote while it was measured.
    """

    def __init__(self, directory: str, interval: float, sources: dict[str, Source]) -> None:
        self.directory = directory
        self.interval = interval
        self.sources = sources
        self.warnings: list[str] = []
        self._lock = threading.RLock()  # re-entrant: SIGTERM may arrive during a periodic flush
        self._wake = threading.Event()
        self._pid = os.getpid()
        self._marked: tuple[int, int] | None = None
        self._flushed: tuple[int, int] | None = None

    def warn(self, message: str) -> None:
        """Record a problem; it reaches results.json through collect_probe_data."""
        self.warnings.append(message)

    def start(self, info: dict[str, Any]) -> None:
        os.makedirs(self.directory, exist_ok=True)
        self._write(f"hook-{self._pid}.json", dict(info, pid=self._pid))
        atexit.register(self.flush)
        self._handle_sigterm()
        self._flush_before_self_kill()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)
        self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name="perf-probe-writer", daemon=True)
        thread.start()

    def _run(self) -> None:
        due = time.monotonic() + self.interval
        while not self._wake.wait(min(MARK_POLL, self.interval)):
            self._check_mark()
            self._check_flush()
            # Quiet while measuring: the subject's bytes written must not include ours. The
            # harness stops the subject with SIGTERM, and the exit flush writes everything.
            if time.monotonic() >= due and self._marked is None:
                self.flush()
                due = time.monotonic() + self.interval

    def _check_mark(self) -> None:
        """At the end of the warm-up, start every source from zero and say so (once per mark)."""
        try:
            found = os.stat(os.path.join(self.directory, MARK))
            stamp = (found.st_ino, found.st_mtime_ns)  # a new mark is a new file (renamed in)
        except OSError:
            return
        if stamp == self._marked:
            return
        self._marked = stamp
        with self._lock:
            for name, source in self.sources.items():
                try:
                    source.reset()
                except Exception as exc:
                    self.warn(f"cannot start measuring afresh: {type(exc).__name__}: {exc}")
                try:  # the warm-up's data must not pass for the measured requests' if we die
                    os.unlink(os.path.join(self.directory, f"{name}-{self._pid}.json"))
                except OSError:
                    pass
            self._write(f"measuring-{self._pid}.json", {"pid": self._pid, "mark": list(stamp)})

    def _check_flush(self) -> None:
        """Write the counts so far when the harness asks (a new FLUSH file), and say so: the
        function-profile pass reads each endpoint's counts between two points of a fixed
        request sequence (harness.pyfunctions)."""
        try:
            found = os.stat(os.path.join(self.directory, FLUSH))
            stamp = (found.st_ino, found.st_mtime_ns)
        except OSError:
            return
        if stamp == self._flushed:
            return
        self._flushed = stamp
        self.flush()
        self._write(f"flushed-{self._pid}.json", {"pid": self._pid, "flush": list(stamp)})

    def flush(self) -> None:
        """Write every source's snapshot and the warnings; never raises into the subject."""
        with self._lock:
            for name, source in self.sources.items():
                try:
                    data = source.snapshot()
                    if data is not None:
                        self._write(f"{name}-{self._pid}.json", data)
                except Exception as exc:
                    message = f"{name}: cannot write probe data: {type(exc).__name__}: {exc}"
                    if message not in self.warnings:
                        self.warnings.append(message)
            if self.warnings:
                try:
                    self._write(f"warnings-{self._pid}.json", list(self.warnings))
                except Exception:
                    pass  # the directory is gone; nothing left to tell anyone

    def _write(self, name: str, value: Any) -> None:
        written = write_json_atomic(os.path.join(self.directory, name), value)
        files = self.sources.get("files")
        if files is not None and hasattr(files, "probe_bytes"):
            files.probe_bytes += written  # the probes' own output is not the subject's

    def _handle_sigterm(self) -> None:
        """Flush on SIGTERM, then do what would have happened without us.

        A subject that installs its own handler later replaces this one and exits through its own
        path, where atexit flushes; one that never does would die without running atexit.
        """
        if not hasattr(signal, "SIGTERM"):
            return
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> Any:
            self.flush()
            if callable(previous):
                return previous(signum, frame)
            if previous == signal.SIG_IGN:
                return None
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)  # die of SIGTERM, as the runner expects
            return None

        signal.signal(signal.SIGTERM, on_sigterm)

    def _flush_before_self_kill(self) -> None:
        """Flush when the process signals itself to die (twistd re-raises SIGTERM that way after
        its shutdown, restoring the default action first, so atexit never runs)."""
        original = os.kill
        if getattr(original, "__perf_probe__", False):
            return
        fatal = {getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGABRT")
                 if hasattr(signal, n)}

        def kill(pid: int, sig: int) -> None:
            if sig in fatal and pid in (0, os.getpid()):
                self.flush()
            original(pid, sig)

        kill.__perf_probe__ = True  # type: ignore[attr-defined]
        kill.__doc__ = original.__doc__
        os.kill = kill

    def _after_fork(self) -> None:
        # The child inherits the parent's totals and no writer thread: start over as a new process.
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        for source in self.sources.values():
            source.reset()
        try:
            self._write(f"hook-{self._pid}.json", {"pid": self._pid, "forked": True,
                                                   "python": sys.version.split()[0]})
            self._start_thread()
        except Exception as exc:
            self.warn(f"probe writer cannot restart after fork: {exc}")
