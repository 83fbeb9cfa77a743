"""Python function profile inside the subject: calls and line events per Python function.

Standard library only: loaded into the subject by harness/probes/functions_boot/sitecustomize.py
when PERF_FUNCTIONS_DIR is set (harness.pyfunctions sets it). Counting starts at start-up; each
SIGUSR1 writes a snapshot of the counts so far to PERF_FUNCTIONS_DIR/functions-PID-K.json (K =
1, 2, ...), so the harness gets the counts of a request sequence as the difference of two
snapshots. The counts are deterministic for a fixed request sequence: no clock is read.

Python 3.12+ uses sys.monitoring (PY_START: calls; LINE: line events). Older versions use
sys.settrace ("call" events, which also fire when a generator or coroutine resumes, and "line"
events). Either way the subject runs several times slower while it is profiled; timing is never
measured in this mode. The profiler's own code is left out of the counts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

ENV_DIR = "PERF_FUNCTIONS_DIR"
TOOL_NAME = "perf-harness-functions"


class Profile:
    """Calls and line events per code object, and the snapshot writer."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.calls: dict[Any, int] = {}
        self.lines: dict[Any, int] = {}
        self.snapshots = 0
        self.mode = ""
        self._monitoring_tool: int | None = None

    # -- counting ----------------------------------------------------------------------------

    def _trace_call(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call":
            code = frame.f_code
            self.calls[code] = self.calls.get(code, 0) + 1
            return self._trace_line
        return None

    def _trace_line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            code = frame.f_code
            self.lines[code] = self.lines.get(code, 0) + 1
        return self._trace_line

    def _on_start(self, code: Any, offset: int) -> None:
        self.calls[code] = self.calls.get(code, 0) + 1

    def _on_line(self, code: Any, line: int) -> None:
        self.lines[code] = self.lines.get(code, 0) + 1

    def start(self) -> None:
        monitoring: Any = getattr(sys, "monitoring", None)
        if monitoring is not None:
            for tool in (monitoring.PROFILER_ID, 3, 4, 5):
                if monitoring.get_tool(tool) is None:
                    monitoring.use_tool_id(tool, TOOL_NAME)
                    self._monitoring_tool = tool
                    break
        if self._monitoring_tool is not None and monitoring is not None:
            events = monitoring.events
            monitoring.register_callback(self._monitoring_tool, events.PY_START, self._on_start)
            monitoring.register_callback(self._monitoring_tool, events.LINE, self._on_line)
            self._resume()
            self.mode = "monitoring"
        else:
            self._resume()
            self.mode = "settrace"

    def _pause(self) -> None:
        monitoring: Any = getattr(sys, "monitoring", None)
        if self._monitoring_tool is not None:
            monitoring.set_events(self._monitoring_tool, 0)
        else:
            sys.settrace(None)
            threading.settrace(None)  # type: ignore[arg-type]

    def _resume(self) -> None:
        monitoring: Any = getattr(sys, "monitoring", None)
        if self._monitoring_tool is not None:
            events = monitoring.events
            monitoring.set_events(self._monitoring_tool, events.PY_START | events.LINE)
        else:
            sys.settrace(self._trace_call)
            threading.settrace(self._trace_call)

    # -- snapshots ---------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        own = os.path.dirname(os.path.abspath(__file__))
        out = []
        for code in set(self.calls) | set(self.lines):
            filename = code.co_filename
            if os.path.dirname(os.path.abspath(filename)) == own:
                continue
            out.append({"file": filename, "line": code.co_firstlineno,
                        "name": getattr(code, "co_qualname", code.co_name),
                        "calls": self.calls.get(code, 0), "lines": self.lines.get(code, 0)})
        return out

    def snapshot(self, *_: Any) -> None:
        """Write the counts so far (a signal handler: never raises into the subject)."""
        self._pause()
        try:
            self.snapshots += 1
            data = {"pid": os.getpid(), "snapshot": self.snapshots, "mode": self.mode,
                    "python": sys.version.split()[0], "functions": self.rows()}
            path = os.path.join(self.directory, f"functions-{os.getpid()}-{self.snapshots}.json")
            tmp = path + ".tmp"
            # a raw descriptor, not open(): the counting probes running beside this profile
            # (harness.pyfunctions) must not count the profile's own output as the subject's
            payload = json.dumps(data).encode("utf-8")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except Exception:  # noqa: BLE001 (the subject must not see the profiler fail)
            pass
        finally:
            self._resume()


def install(environ: Any = None) -> Profile | None:
    """Start counting and answer SIGUSR1 with a snapshot; None when not asked to or not possible
    (no SIGUSR1 on this platform, or the subject already handles it)."""
    environ = os.environ if environ is None else environ
    directory = environ.get(ENV_DIR)
    usr1 = getattr(signal, "SIGUSR1", None)
    if not directory or usr1 is None or signal.getsignal(usr1) not in (signal.SIG_DFL, None):
        return None
    os.makedirs(directory, exist_ok=True)
    profile = Profile(directory)
    signal.signal(usr1, profile.snapshot)
    profile.start()
    return profile
