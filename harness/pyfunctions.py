"""Which Python functions changed: calls and line events per request, per Python function.

The subject is started once per side, natively, with the profile probe
(harness/probes/pyprofile.py) injected through PYTHONPATH. For each endpoint of the workload the
same fixed closed-loop sequence as the instruction tier is sent (WARMUP requests, a snapshot, N
requests, a snapshot), so

    calls per request = (calls at the second snapshot - calls at the first) / N

per Python function, and the same for line events. The counts do not depend on timing, so one
run per side is enough and a change of one call per request is real. The subject's state is
seeded once by the setup commands, as for the instruction tier.

`run_function_profile` returns the JSON-able dict stored under "python" in
`Results.instructions`:

    {"available": true, "reason": null, "mode": "settrace" | "monitoring", "requests": N,
     "wall_time": 3.2,
     "endpoints": {"channels": [{"function": "subjects/peer/api.py:88 channels",
                                 "calls": 1.0, "lines": 412.0}, ...]}}

Functions are named "file:line qualname", the file relative to the subject's working directory
(or "site-packages/..." and "stdlib/..." for installed code). Where SIGUSR1 does not exist
(Windows) the profile is unavailable, with the reason.

The same pass counts, per endpoint, what the experiment's counting probes see (`sqlite`,
`blocking`, `files` under [probes]; harness/probes): they run in the same process, start from zero
at the first snapshot of each endpoint (the probes' measuring mark) and write their counts at the
second (a flush request), so each endpoint's statements, blocking calls on the event loop and
bytes by file kind per request are exact, with no timing in them:

     "probes": {"channels": {"queries_per_request": 1.0, "loop_queries_per_request": 0.0,
                             "log_write_bytes_per_request": 65.0, ...}, ...}

(absent when no counting probe is on; harness.compare judges them as `metric[endpoint]` series).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import probes as probes_mod
from harness.errors import SubjectError
from harness.experiment import Experiment, expand
from harness.instructions import WARMUP, _check_listening, _real_python, _Runner
from harness.metrics import PROFILE_ENDPOINT_METRICS
from harness.probes.inject import enabled
from harness.probes.pyprofile import ENV_DIR
from harness.process import start_process, stop_process_tree
from harness.subject import free_ports, log_tail

BOOT_DIR = Path(__file__).resolve().parent / "probes" / "functions_boot"
TOP = 200  # functions kept per endpoint, by line events + calls per request
SNAPSHOT_TIMEOUT = 30.0
# what a counting probe that wrote nothing for an endpoint saw: none of its events
_NOTHING_SEEN = {"sqlite": ("queries_per_request", "query_rows_per_request"),
                 "blocking": ("loop_queries_per_request", "loop_blocking_calls_per_request",
                              "loop_file_bytes_per_request")}


def _where(filename: str, root: Path) -> str:
    """A function's file for people: relative to the project, or site-packages/..., stdlib/..."""
    path = Path(filename)
    text = path.as_posix()
    # installed code first: an environment inside the project (.perf-cache/envs, a .venv) is
    # still library code, not the project's
    found = re.search(r"/(site-packages|dist-packages)/(.*)$", text)
    if found:
        return f"site-packages/{found.group(2)}"
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        pass
    found = re.search(r"/lib/python\d+(?:\.\d+)?/(.*)$", text)
    if found:
        return f"stdlib/{found.group(1)}"
    return text


class _ProfileRunner(_Runner):
    """The instruction tier's runner (seed, environment, readiness, request sequence), with the
    subject started natively under the function profile instead of valgrind."""

    slowdown_factor = 20.0  # settrace slows Python code down; timeouts stretch with it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slowdown = self.slowdown_factor
        # the counting probes of the experiment, in the same process (never the lag probe: a time)
        self.counting = replace(self.experiment.probes, loop_lag=False)
        self.probe_counts: dict[str, dict[str, float]] = {}
        self.probe_warnings: list[str] = []

    def _inject_probes(self, env: dict[str, str], run_dir: Path,
                       state_dir: Path) -> Path | None:
        """The counting probes' hook in `env` (after the profile's); their data folder."""
        if not enabled(self.counting):
            return None
        probe_dir = run_dir / "probes"
        probe_dir.mkdir()
        injected, warnings = probes_mod.probe_environment(
            self.counting, data_dir=probe_dir, base_env=env, is_python=True, state_dir=state_dir)
        env.clear()
        env.update(injected)
        self.probe_warnings += warnings
        return probe_dir

    def _probe_counts(self, probe_dir: Path, requests: int) -> dict[str, float]:
        """One endpoint's counts per request: written on request after its sequence (none when a
        process did not write them: a missing count is never taken for zero)."""
        unanswered = probes_mod.flush_probes(probe_dir)
        if unanswered:
            self.probe_warnings += unanswered
            return {}
        data = probes_mod.collect_probe_data(probe_dir)
        # a probe that failed to install or write says so; "no data" is expected where an
        # endpoint runs no statement, and counts as none seen (below)
        self.probe_warnings += [w for w in data.get("warnings", []) if w.startswith("probe: ")]
        summary = probes_mod.probe_metrics(data, requests)
        out = {k: float(v) for k, v in summary.items()
               if k in PROFILE_ENDPOINT_METRICS and v is not None}
        for name, keys in _NOTHING_SEEN.items():
            if name in enabled(self.counting) and name not in data:
                out.update({k: 0.0 for k in keys if k not in out})
        return out

    def profile(self, requests: int) -> tuple[str, dict[str, list[dict[str, Any]]]]:
        """One start, every endpoint's sequence between two snapshots; (mode, rows by endpoint).
        The counting probes' per-endpoint counts are left in `self.probe_counts`."""
        run_dir = self.work_dir / "profile"
        state_dir = run_dir / "state"
        shutil.copytree(self.seed_dir, state_dir)
        snap_dir = run_dir / "snapshots"
        snap_dir.mkdir()
        port = free_ports(1)[0]
        values = self.values(state_dir, port, run_dir)
        env = self.env(values)
        probe_dir = self._inject_probes(env, run_dir, state_dir)
        env[ENV_DIR] = str(snap_dir)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(BOOT_DIR) + (os.pathsep + path if path else "")
        argv = list(expand(self.subject.command, values))
        log_path = run_dir / "subject.log"
        with open(log_path, "wb") as log:
            process = start_process(argv, cwd=self.cwd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        out: dict[str, list[dict[str, Any]]] = {}
        mode = ""
        try:
            self._wait_ready(process, port, log_path)
            _check_listening(process, port)
            for endpoint in self.workload.endpoints:
                self._drive(endpoint, port, WARMUP)
                if probe_dir is not None:  # the probes count from here: this endpoint's only
                    self.probe_warnings += probes_mod.mark_measuring([probe_dir])
                before = self._snapshot(process, snap_dir, log_path)
                self._drive(endpoint, port, requests)
                after = self._snapshot(process, snap_dir, log_path)
                mode = after.get("mode", "")
                out[endpoint.name] = self._per_request(before, after, requests)
                if probe_dir is not None:
                    self.probe_counts[endpoint.name] = self._probe_counts(probe_dir, requests)
        finally:
            stop_process_tree(process, timeout=max(10.0, self.subject.stop_timeout))
        return mode, out

    def _snapshot(self, process: subprocess.Popen[bytes], snap_dir: Path,
                  log_path: Path) -> dict[str, Any]:
        count = len(list(snap_dir.glob("functions-*.json"))) + 1
        process.send_signal(signal.SIGUSR1)  # type: ignore[attr-defined]  # checked by caller
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT
        while time.monotonic() < deadline:
            found = list(snap_dir.glob(f"functions-{process.pid}-{count}.json"))
            if found:
                return dict(json.loads(found[0].read_text(encoding="utf-8")))
            if process.poll() is not None:
                break
            time.sleep(0.05)
        raise SubjectError(
            f"the subject wrote no function profile within {SNAPSHOT_TIMEOUT:.0f} s of SIGUSR1 "
            f"(it must be a Python process started directly by the command, not through a shell, "
            f"and must not handle SIGUSR1 itself); its output: {log_tail([log_path])}")

    def _per_request(self, before: dict[str, Any], after: dict[str, Any],
                     requests: int) -> list[dict[str, Any]]:
        def table(data: dict[str, Any]) -> dict[str, tuple[int, int]]:
            out: dict[str, tuple[int, int]] = {}
            for row in data.get("functions", []):
                name = f"{_where(row['file'], self.cwd)}:{row['line']} {row['name']}"
                calls, lines = out.get(name, (0, 0))
                out[name] = (calls + int(row["calls"]), lines + int(row["lines"]))
            return out

        first, second = table(before), table(after)
        rows: list[dict[str, Any]] = []
        for name, (calls, lines) in second.items():
            c0, l0 = first.get(name, (0, 0))
            if calls - c0 or lines - l0:
                rows.append({"function": name, "calls": (calls - c0) / requests,
                             "lines": (lines - l0) / requests})
        rows.sort(key=lambda r: (-(r["lines"] + r["calls"]), r["function"]))
        return rows[:TOP]


def run_function_profile(experiment: Experiment, *, work_dir: Path, project_root: Path,
                         python: str, variables: Mapping[str, str] | None = None
                         ) -> dict[str, Any]:
    """Calls and line events per request per Python function, for every endpoint."""
    requests = experiment.instructions.requests
    result: dict[str, Any] = {"available": True, "reason": None, "mode": None,
                              "requests": requests, "wall_time": 0.0, "endpoints": {}}
    if not hasattr(signal, "SIGUSR1"):
        return {**result, "available": False,
                "reason": f"no SIGUSR1 on {sys.platform}: the profile cannot be read mid-run"}
    if experiment.workload is None or not experiment.workload.endpoints:
        return {**result, "available": False, "reason": "the experiment has no endpoints"}
    started = time.monotonic()
    work_dir = Path(work_dir) / "python-functions"
    if work_dir.exists():
        shutil.rmtree(work_dir)
    runner = _ProfileRunner(experiment, work_dir, Path(project_root), _real_python(python),
                            dict(variables or {}))
    try:
        runner.seed()
        result["mode"], result["endpoints"] = runner.profile(requests)
    except SubjectError as exc:  # the rest of the run stands; the report says why this is absent
        return {**result, "available": False, "reason": str(exc)}
    if runner.probe_counts:
        result["probes"] = runner.probe_counts
    if runner.probe_warnings:
        result["probe_warnings"] = list(dict.fromkeys(runner.probe_warnings))
    result["wall_time"] = round(time.monotonic() - started, 3)
    return result


def _in_project(function: str) -> bool:
    return not function.startswith(("site-packages/", "stdlib/", "/", "<"))


def python_function_changes(baseline: Mapping[str, Any] | None,
                            candidate: Mapping[str, Any] | None,
                            top: int = 15) -> list[dict[str, Any]]:
    """The Python functions whose cost per request changed most, over every endpoint.

    Each item: {"endpoint", "function", "baseline", "candidate", "change", "unit",
    "calls_baseline", "calls_candidate"}: line events per request (the unit "lines"), or calls
    per request when a function's line events did not change. Ranked by absolute change, then
    name, the project's functions before installed code; a function absent from one side
    counts as 0 there.
    """
    base = (baseline or {}).get("endpoints") or {}
    cand = (candidate or {}).get("endpoints") or {}
    rows = []
    for endpoint in sorted(set(base) & set(cand)):
        before = {r["function"]: r for r in base[endpoint]}
        after = {r["function"]: r for r in cand[endpoint]}
        for name in set(before) | set(after):
            b, c = before.get(name, {}), after.get(name, {})
            lines = (float(b.get("lines", 0.0)), float(c.get("lines", 0.0)))
            calls = (float(b.get("calls", 0.0)), float(c.get("calls", 0.0)))
            unit, pair = ("lines", lines) if lines[0] != lines[1] else ("calls", calls)
            change = pair[1] - pair[0]
            if abs(change) < 1e-9:
                continue
            rows.append({"endpoint": endpoint, "function": name, "baseline": pair[0],
                         "candidate": pair[1], "change": change, "unit": unit,
                         "calls_baseline": calls[0], "calls_candidate": calls[1]})
    # The project's own functions first: that is code the developer can change; library and
    # event-loop functions follow (their counts also move with how often the loop woke up).
    rows.sort(key=lambda r: (not _in_project(r["function"]), -abs(r["change"]), r["endpoint"],
                             r["function"]))
    return rows[:top]
