"""The instruction-count tier: instructions per request under valgrind, exact enough to gate on 1%.

For each endpoint the subject is started under valgrind (harness.valgrind) with PYTHONHASHSEED=0,
bytecode writing off and a fresh copy of a state directory seeded once by the setup commands, so
every run starts from identical bytes. It is sent a fixed closed-loop sequence of N requests
(sequential, blocking; timing does not matter) and stopped with SIGTERM so valgrind writes its
file. One more run with 0 requests gives start-up and idle cost, and

    instructions per request = (I_N - I_0) / N

so both cancel. Both runs first send WARMUP requests to the endpoint (and one readiness request
when readiness is checked over HTTP), so first-request costs such as lazy imports cancel too and
the result is the steady-state cost of a request. Only one instance is started (the workload's
target, with `{peers}` empty): traffic from other peers would add work that depends on timing.

`InstructionTier` runs the tier more than once for one side (harness perf: twice, so the counts'
own spread is measured): later runs start only the N-request runs and share the first run's
0-request count, whose run-to-run variation divided by N is far below the N-request run's.

`run_instruction_tier` (one run) returns the JSON-able dict stored as `Results.instructions`:

    {
      "tool": "cachegrind" | "callgrind",
      "requests": N,
      "min_change": 0.01,                  # the experiment's relative threshold
      "available": true,                   # false (with "reason") where valgrind cannot run
      "reason": null,
      "wall_time": 41.3,                   # seconds the tier took
      "idle": "measured" | "shared",       # the 0-request count: this run's, or the first run's
      "endpoints": {"channels": {"per_request": 1234567.9, "total_n": int, "total_0": int,
                                 "non_2xx": 0}},
      "functions": {"channels": [{"function": "Objects/dictobject.c:_Py_dict_lookup",
                                  "ir_n": int, "ir_0": int}, ...]}
    }

`functions` lists, per endpoint, the 50 functions with the most self instructions attributable to
the requests (ir_n - ir_0), named "file:function" with the file shortened to its last two path
parts. Both tools give these; with Python subjects they are CPython's C functions (the
interpreter's work), not Python functions.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from harness import valgrind
from harness.errors import ConfigError, SubjectError
from harness.experiment import Endpoint, Experiment, Subject, expand
from harness.process import start_process, stop_sequence
from harness.secrets import subject_environment
from harness.subject import free_ports, http_request, run_command, wait_until_ready

TOP_FUNCTIONS = 50
# Requests sent to the endpoint in both runs before the counted ones: the first request pays for
# lazy imports and cold caches, which would otherwise be charged to the N requests only.
WARMUP = 1
_POLL = 0.2  # seconds between readiness checks


def run_instruction_tier(experiment: Experiment, *, work_dir: Path, project_root: Path,
                         python: str, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Measure instructions per request for every endpoint of `experiment` (see the module doc).

    `variables` override the experiment's [variables] for these runs only, e.g. to switch a
    subject's background timers off (`{"sync_interval": "0"}` with `--sync-interval
    {sync_interval}` in the command).
    """
    return InstructionTier(experiment, work_dir=work_dir, project_root=project_root,
                           python=python, variables=variables).run()


class InstructionTier:
    """One side's instruction tier over several runs: the state is seeded once and the
    0-request run of each endpoint is measured once, in the first run, and shared by the later
    ones. A later run costs one valgrind start per endpoint instead of two, and still gives an
    independent N-request count, so the runs' spread shows how far a per-request count moves
    between runs (the 0-request count moved by about 11,000 of 1.6e9 instructions between two
    starts of the peer: below 0.001%, i.e. under 1,000 instructions per request at N = 12)."""

    def __init__(self, experiment: Experiment, *, work_dir: Path, project_root: Path,
                 python: str, variables: Mapping[str, str] | None = None) -> None:
        tier = experiment.instructions
        if experiment.workload is None or not experiment.workload.endpoints:
            raise ConfigError(f"{experiment.path}: the instruction tier needs [workload] "
                              "endpoints to send requests to; add at least one endpoint")
        if tier.requests < 1:
            raise ConfigError(f"{experiment.path}: instructions.requests is {tier.requests}; "
                              "it must be at least 1")
        self.experiment = experiment
        self.endpoints = experiment.workload.endpoints
        self.tier = tier
        self.work_dir = Path(work_dir) / "instructions"
        self.project_root = Path(project_root)
        self.python = python
        self.variables = dict(variables or {})
        self.runs = 0
        self.last_busy_seconds = 0.0  # the N-request runs of the last run: what another costs
        self.stop = threading.Event()  # set from another thread: start no further subject
        self._runner: _Runner | None = None
        self._idle: dict[str, valgrind.Profile] = {}

    def run(self) -> dict[str, Any]:
        """One run: the first seeds and measures the 0-request runs too; every run measures the
        N-request run of each endpoint afresh."""
        tier = self.tier
        result: dict[str, Any] = {"tool": tier.tool, "requests": tier.requests,
                                  "min_change": tier.min_change, "available": True,
                                  "reason": None, "wall_time": 0.0, "endpoints": {},
                                  "functions": {},
                                  "idle": "measured" if self.runs == 0 else "shared"}
        self.runs += 1
        reason = valgrind.unavailable_reason()
        if reason is not None:
            return {**result, "available": False, "reason": reason}
        started = time.monotonic()
        runner = self._runner
        if runner is None:
            if self.work_dir.exists():
                shutil.rmtree(self.work_dir)
            runner = self._runner = _Runner(self.experiment, self.work_dir, self.project_root,
                                            _real_python(self.python), self.variables)
            runner.seed()
        busy_seconds = 0.0
        for endpoint in self.endpoints:
            if endpoint.name not in self._idle:
                self._idle[endpoint.name] = self._measure(runner, endpoint, 0)
            idle = self._idle[endpoint.name]
            busy_started = time.monotonic()
            busy = self._measure(runner, endpoint, tier.requests)
            busy_seconds += time.monotonic() - busy_started
            result["endpoints"][endpoint.name] = {
                "per_request": (busy.total - idle.total) / tier.requests,
                "total_n": busy.total, "total_0": idle.total, "non_2xx": runner.non_2xx}
            result["functions"][endpoint.name] = _top_functions(busy, idle)
        self.last_busy_seconds = busy_seconds
        result["wall_time"] = round(time.monotonic() - started, 3)
        return result

    def _measure(self, runner: _Runner, endpoint: Endpoint, requests: int) -> valgrind.Profile:
        if self.stop.is_set():
            raise SubjectError("the instruction tier was stopped because the other side's tier "
                               "failed or the session was interrupted; the first error says why")
        return runner.measure(endpoint, requests)


def function_changes(baseline: dict[str, Any], candidate: dict[str, Any],
                     top: int = 15) -> list[dict[str, Any]]:
    """The functions whose instructions per request changed most, over every endpoint.

    Each item: {"endpoint", "function", "baseline", "candidate", "change"} in instructions per
    request (change = candidate - baseline), ranked by absolute change. A function missing from one
    side's top list counts as 0 there (it was below that side's cutoff).
    """
    rows = []
    for name in sorted(set(baseline.get("functions", {})) & set(candidate.get("functions", {}))):
        before = _per_request_functions(baseline, name)
        after = _per_request_functions(candidate, name)
        for function in set(before) | set(after):
            b, c = before.get(function, 0.0), after.get(function, 0.0)
            rows.append({"endpoint": name, "function": function, "baseline": b, "candidate": c,
                         "change": c - b})
    rows.sort(key=lambda row: (-abs(row["change"]), row["endpoint"], row["function"]))
    return rows[:top]


def relative_changes(baseline: dict[str, Any], candidate: dict[str, Any], *,
                     min_change: float | None = None) -> list[dict[str, Any]]:
    """Per endpoint: both sides' instructions per request, the relative change, and whether it
    reaches `min_change` (default: the candidate's declared threshold)."""
    threshold = candidate.get("min_change", 0.01) if min_change is None else min_change
    rows = []
    for name in sorted(set(baseline.get("endpoints", {})) & set(candidate.get("endpoints", {}))):
        b = baseline["endpoints"][name]["per_request"]
        c = candidate["endpoints"][name]["per_request"]
        change = (c - b) / b if b else float("inf")
        rows.append({"endpoint": name, "baseline": b, "candidate": c, "change": change,
                     "flagged": abs(change) >= threshold})
    return rows


def _per_request_functions(side: dict[str, Any], endpoint: str) -> dict[str, float]:
    n = side["requests"]
    return {row["function"]: (row["ir_n"] - row["ir_0"]) / n for row in side["functions"][endpoint]}


def _top_functions(busy: valgrind.Profile, idle: valgrind.Profile) -> list[dict[str, Any]]:
    merged: dict[str, list[int]] = {}
    for profile, column in ((busy, 0), (idle, 1)):
        for name, ir in profile.functions.items():
            merged.setdefault(_short(name), [0, 0])[column] += ir
    ranked = sorted(merged.items(), key=lambda kv: (-(kv[1][0] - kv[1][1]), kv[0]))
    return [{"function": name, "ir_n": n, "ir_0": z} for name, (n, z) in ranked[:TOP_FUNCTIONS]]


def _short(name: str) -> str:
    """'/tmp/build/Python-3.11/Objects/dictobject.c:f' -> 'Objects/dictobject.c:f'."""
    path, _, function = name.rpartition(":")
    parts = re.split(r"[\\/]", path)
    return f"{'/'.join(parts[-2:])}:{function}"


def _real_python(python: str) -> str:
    """The interpreter binary itself: valgrind on a wrapper script (a pyenv shim) would measure
    the shell and every program it runs before the interpreter."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.executable)"], check=True,
                             capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot run the interpreter {python!r}: {exc}") from exc
    return out or python


class _Runner:
    """Seeds the state once, then starts, drives and stops the subject under valgrind per run."""

    def __init__(self, experiment: Experiment, work_dir: Path, project_root: Path, python: str,
                 overrides: dict[str, str]) -> None:
        self.experiment = experiment
        self.subject = experiment.subject
        self.tier = experiment.instructions
        self.work_dir = work_dir
        self.cwd = project_root / self.subject.cwd if self.subject.cwd else project_root
        self.python = python
        self.variables = {**experiment.variables, **overrides}
        assert experiment.workload is not None
        self.workload = experiment.workload
        self.seed_dir = work_dir / "seed"
        self.runs = 0
        self.non_2xx = 0
        self.slowdown = valgrind.SLOWDOWN[self.tier.tool]

    def values(self, state_dir: Path, port: int, out_dir: Path) -> dict[str, str]:
        return {**self.variables, "python": self.python, "port": str(port),
                "state_dir": str(state_dir), "instance": str(self.workload.instance),
                "peers": "", "out_dir": str(out_dir)}

    def env(self, values: Mapping[str, str]) -> dict[str, str]:
        env = subject_environment()
        env.update({k: expand((v,), values)[0] for k, v in self.subject.env.items()})
        # Pinned sources of run-to-run difference: string hashing, and .pyc files written by the
        # first run and read by the next (compiling costs far more than loading).
        env.update({"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTHONUNBUFFERED": "1"})
        return env

    def seed(self) -> None:
        """Run the setup commands once, natively, into the seed state directory."""
        self.seed_dir.mkdir(parents=True)
        values = self.values(self.seed_dir, free_ports(1)[0], self.work_dir)
        for index, setup in enumerate(self.subject.setup, 1):
            if setup.instances is not None and self.workload.instance not in setup.instances:
                continue
            run_command(list(expand(setup.command, values)), cwd=self.cwd, env=self.env(values),
                        log=self.work_dir / f"setup-{index}.log", timeout=setup.timeout,
                        who=f"{self.experiment.path}: subject.setup[{index}]")

    def measure(self, endpoint: Endpoint, requests: int) -> valgrind.Profile:
        """A fresh start under valgrind, WARMUP + `requests` requests to `endpoint`, clean stop."""
        self.runs += 1
        self.non_2xx = 0
        run_dir = self.work_dir / f"run-{self.runs:03d}"  # same length for every run
        state_dir = run_dir / "state"
        shutil.copytree(self.seed_dir, state_dir)
        port = free_ports(1)[0]
        values = self.values(state_dir, port, run_dir)
        argv = list(expand(self.subject.command, values))
        out_file = run_dir / f"{self.tier.tool}.out.%p"
        log_path = run_dir / "subject.log"
        with open(log_path, "wb") as log:
            process = start_process(
                valgrind.command(self.tier.tool, out_file, argv,
                                 log_file=run_dir / "valgrind.log.%p"), cwd=self.cwd,
                env=self.env(values), stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(process, port, log_path)
            _check_listening(process, port)
            self._drive(endpoint, port, WARMUP + requests)
        finally:
            _stop(process, self.subject, port, max(60.0, self.subject.stop_wait * 6))
        return valgrind.read_profiles(run_dir.glob(f"{self.tier.tool}.out.*"))

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        timeout = max(120.0, self.subject.ready.timeout * 10)  # valgrind: 40-100x slower start
        wait_until_ready(process, self.subject.ready, url=f"http://127.0.0.1:{port}",
                         logs=[log_path], deadline=time.monotonic() + timeout,
                         who="the subject under valgrind", port=port, http_timeout=timeout,
                         poll=_POLL, timeout_hint="raise [subject.ready] timeout (the tier "
                         "waits ten times as long) or fix the readiness check")

    def _drive(self, endpoint: Endpoint, port: int, requests: int) -> None:
        """A fixed closed-loop sequence: one request at a time on one keep-alive connection."""
        timeout = max(60.0, self.workload.timeout * self.slowdown)
        body = endpoint.body.encode("utf-8") if endpoint.body is not None else None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            for number in range(1, requests + 1):
                try:
                    conn.request(endpoint.method, endpoint.path, body=body,
                                 headers=dict(endpoint.headers))
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as exc:
                    raise SubjectError(f"request {number} of {requests} to {endpoint.method} "
                                       f"{endpoint.path} failed under valgrind: {exc!r}") from exc
                if not 200 <= response.status < 300:
                    self.non_2xx += 1
                if response.will_close:
                    conn.close()
        finally:
            conn.close()


def _check_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Make sure the server that answered is ours: another program may have taken the port
    between choosing it and the subject binding it."""
    try:
        members = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
        ports = {conn.laddr.port for member in members
                 for conn in member.net_connections(kind="tcp")
                 if conn.status == psutil.CONN_LISTEN}
    except (psutil.Error, OSError):
        return  # cannot tell on this platform; the counts will show an absent subject anyway
    if port not in ports:
        raise SubjectError(f"the subject is not listening on port {port} although the readiness "
                           "check succeeded; another program took the port; run again")


def _stop(process: subprocess.Popen[bytes], subject: Subject, port: int, timeout: float) -> None:
    """Stop the subject through the one stop sequence so valgrind writes its files.

    The signal is re-sent every 2 s until the timeout: valgrind delivers a signal when the
    subject next enters a system call, so one that arrives just before a blocking select() runs
    the handler and then blocks anyway (asyncio is immune: its handler writes to a wake-up pipe).
    """
    first = None
    if subject.stop.http:
        method, path = subject.stop.method_path

        def send() -> None:
            http_request(f"http://127.0.0.1:{port}{path}", method=method,
                         headers=subject.stop.headers, timeout=min(30.0, timeout))

        first = (f"http {method} {path}", send)
    outcome = stop_sequence(process, timeout=timeout, first=first,
                            signal_name=subject.stop.then, repeat_signal=True)
    if outcome.step == "SIGKILL":
        raise SubjectError(f"the subject did not exit within {outcome.seconds:.0f} s under "
                           f"valgrind and was killed, so no instruction counts were written; "
                           f"{outcome.warning}")
