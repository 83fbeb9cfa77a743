"""Which Python functions ran how often: calls per Python function, exact for a fixed workload.

Runs inside the subject, standard library only. Off by default (`[probes] functions = true`): a
profile hook runs on every Python call, which slows the subject several times, so its timings
mean little in that run; the counts do not depend on timing. Python 3.12+ uses sys.monitoring
(PY_START events, every thread at once); older Pythons use sys.setprofile and
threading.setprofile (threads started after the probe). C functions are not counted here (the
instruction tier's callgrind profile has them).

Snapshot (Round.probes["functions"]):

    {"functions": [{"where": "file:line qualname", "project": bool, "calls": n}],  # top TOP
     "total_calls": n, "mechanism": "sys.monitoring" | "sys.setprofile"}

`where` is named as callers are (harness/probes/frames.py: relative to the project root, after
site-packages/); `line` is the function's first line.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from . import frames

TOP = 400
_TOOL_ID = 4  # sys.monitoring tool id (0-5; 0-2 and 5 are taken by debuggers and profilers)
_get_ident = threading.get_ident


class FunctionCounts:
    """Calls per code object, one dict per thread (exact without a lock), merged at snapshot."""

    def __init__(self) -> None:
        self.mechanism = ""
        self.reset()

    def reset(self) -> None:
        self._threads: dict[int, dict[Any, int]] = {}

    def table(self) -> dict[Any, int]:
        ident = _get_ident()
        found = self._threads.get(ident)
        if found is None:
            found = self._threads[ident] = {}
        return found

    def snapshot(self) -> dict[str, Any] | None:
        merged: dict[Any, int] = {}
        for table in list(self._threads.values()):
            for code, calls in list(table.items()):
                merged[code] = merged.get(code, 0) + calls
        if not merged:
            return None
        named: dict[str, list[Any]] = {}
        for code, calls in merged.items():
            if frames._classify(code.co_filename, "") == frames.PROBE:
                continue  # the probes' own functions are not the subject's
            where = frames.describe(((code, code.co_firstlineno), None))[0]
            slot = named.setdefault(where, [0, code.co_filename])
            slot[0] += calls
        top = sorted(named.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP]
        return {
            "functions": [{"where": where, "calls": calls,
                           "project": frames._classify(filename, "") == frames.PROJECT}
                          for where, (calls, filename) in top],
            "total_calls": sum(merged.values()),
            "mechanism": self.mechanism,
        }


COUNTS = FunctionCounts()


def _install_monitoring(monitoring: Any) -> bool:
    try:
        monitoring.use_tool_id(_TOOL_ID, "perf-harness")
    except ValueError:
        return False
    counts = COUNTS

    def on_start(code: Any, offset: int) -> None:
        table = counts.table()
        table[code] = table.get(code, 0) + 1

    monitoring.register_callback(_TOOL_ID, monitoring.events.PY_START, on_start)
    monitoring.set_events(_TOOL_ID, monitoring.events.PY_START)
    COUNTS.mechanism = "sys.monitoring"
    return True


def _install_profile() -> None:
    counts = COUNTS

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            table = counts.table()
            code = frame.f_code
            table[code] = table.get(code, 0) + 1

    threading.setprofile(profile)
    sys.setprofile(profile)
    COUNTS.mechanism = "sys.setprofile"


def install() -> None:
    """Count calls of Python functions from now on."""
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None and _install_monitoring(monitoring):
        return
    _install_profile()
