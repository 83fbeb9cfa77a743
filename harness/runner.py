"""Rounds and experiments: start the subject fresh, load it, sample it, summarise, write results.

A round is one fresh start of the subject (every instance), a warm-up that is discarded, and one
measured workload at the step's rate; resources are sampled only inside the measured window (the
first and last rows bracket it). With a scenario the timeline replaces that plan: the measured
window is the whole timeline, and its callables are

    workload [RATE]       start the experiment's workload (no warm-up; the timeline decides what
                          comes before) against the line's instances, default [workload] instance
    get PATH              one GET to each of the line's instances (a non-2xx answer is a warning)
    post PATH [BODY]      one POST with BODY (JSON text) to each of the line's instances
    wait_for PATH FIELD VALUE [TIMEOUT]
                          poll GET PATH until its JSON field FIELD (dotted: a.0.b) equals VALUE
                          (default timeout 60 s)
    sleep DURATION        pause the timeline (1200ms, 0.02m, 2); later lines run after it
    stop                  stop the line's instances (their process trees)
    end                   wait for a running workload to finish, then end the timeline

A rate sweep is one round per rate. `run_experiment` writes results.json only when every round
finished, atomically, so an interrupted or failed run leaves no file behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import driver as driver_mod
from harness import probes as probes_mod
from harness.calibration import Calibrator
from harness.environment import collect_environment
from harness.errors import ConfigError, SubjectError
from harness.experiment import Experiment, ScenarioLine, Workload
from harness.metrics import endpoint_metrics, request_metrics, resource_metrics
from harness.process import sigterm_as_interrupt
from harness.progress import Progress
from harness.results import ExperimentInfo, RequestLog, ResourceSeries, Results, Round, save_results
from harness.sampler import ResourceSampler
from harness.scenario import WAIT_FOR_INTERVAL, WAIT_FOR_TIMEOUT
from harness.stats import percentile
from harness.subject import SubjectGroup, http_request
from harness.units import parse_duration, parse_rate

SAMPLE_LEAD = 0.1  # seconds between the opening resource row and the first intended send


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class _Window:
    """What the measured window of one round produced, before it becomes Rounds."""

    duration: float = 0.0
    load: driver_mod.DriverResult | None = None
    load_instance: int = 1
    load_offset: float = 0.0  # seconds from the window's start to the workload's start
    series: dict[int, ResourceSeries] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# -- sampling --------------------------------------------------------------------------------------


class _Samplers:
    """One ResourceSampler per running instance, all measuring from the same origin."""

    def __init__(self, experiment: Experiment, group: SubjectGroup, origin: float) -> None:
        self.samplers: dict[int, ResourceSampler] = {}
        if experiment.probes.resources:
            interval = experiment.probes.resource_interval
            for instance in group.instances:
                if instance.process is not None:
                    self.samplers[instance.number] = ResourceSampler(
                        instance.process.pid, interval, origin)

    def __enter__(self) -> _Samplers:
        for sampler in self.samplers.values():
            sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sampler in self.samplers.values():
            sampler.stop()

    def series(self) -> dict[int, ResourceSeries]:
        return {number: sampler.series() for number, sampler in self.samplers.items()}


def _expected_latency(warm: driver_mod.DriverResult | None) -> float:
    """p90 service time of the warm-up, so the measured run's pool fits the subject's speed."""
    if warm is None:
        return 0.05
    ok = [s for s, e in zip(warm.log.service, warm.log.error, strict=True) if e is None]
    return min(1.0, max(0.001, percentile(ok, 90))) if ok else 0.05


def _load(workload: Workload) -> dict[str, Any]:
    """The measured load's size: a request count, or a duration when no count is given."""
    if workload.requests is not None:
        return {"requests": workload.requests, "duration": None}
    return {"requests": None, "duration": workload.duration}


# -- the plain plan: warm-up, then the measured workload -------------------------------------------


def _plain_window(experiment: Experiment, group: SubjectGroup, rate: float,
                  progress: Progress | None, calibrator: Calibrator | None = None) -> _Window:
    workload = experiment.workload
    if workload is None:
        raise ConfigError(
            f"{experiment.path}: the experiment has neither a [workload] nor a scenario, so a "
            f"round would measure nothing; add one of them."
        )
    port = group.instance(workload.instance).port
    on_progress = progress.requests if progress else None
    run_load = driver_mod.run_workload
    warnings: list[str] = []
    if workload.driver == "jmeter":  # same records from JMeter (harness.jmeter)
        from harness import jmeter

        files = group.instance(workload.instance).state_dir.parent / "jmeter"  # kept, like logs
        run_load = functools.partial(jmeter.run_workload, work_dir=files)
        warnings += jmeter.driver_warnings()
    warm = None
    if workload.warmup > 0:
        warm = run_load(workload, port=port, rate=rate, duration=workload.warmup)
    if calibrator is not None:  # the subject idles: the side process does not load it
        calibrator.before()
    group.warnings.extend(probes_mod.mark_measuring(i.probe_dir for i in group.instances))
    origin = time.monotonic() + SAMPLE_LEAD
    with _Samplers(experiment, group, origin) as samplers:
        load = run_load(workload, port=port, rate=rate, **_load(workload),
                        expected_latency=_expected_latency(warm), on_progress=on_progress,
                        start_at=origin)
    if calibrator is not None:
        calibrator.after()
    return _Window(duration=time.monotonic() - origin, load=load,
                   load_instance=workload.instance, series=samplers.series(), warnings=warnings)


# -- the scenario plan: a timeline of callables ---------------------------------------------------


class _BackgroundLoad:
    """A workload running in its own thread and event loop while the timeline goes on."""

    def __init__(self, workload: Workload, *, port: int, rate: float, start_at: float,
                 progress: Progress | None) -> None:
        self.result: driver_mod.DriverResult | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._args = dict(
            port=port, rate=rate, arrival=workload.arrival, timeout=workload.timeout,
            max_lag=workload.max_lag, seed=workload.seed, connections=workload.connections,
            on_progress=progress.requests if progress else None, start_at=start_at,
            **_load(workload))
        self._endpoints = workload.endpoints
        self._thread = threading.Thread(target=self._run, name="workload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(driver_mod.drive(self._endpoints, **self._args))
            self.result = loop.run_until_complete(self._task)
        except BaseException as exc:  # handed to the timeline's thread in join()
            self.error = exc
        finally:
            loop.close()

    def join(self) -> driver_mod.DriverResult:
        self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def cancel(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop closed meanwhile
        self._thread.join(timeout=5)


def _ordered(lines: tuple[ScenarioLine, ...]) -> list[tuple[float, ScenarioLine]]:
    """Lines by due time; `@!` runs when reached (the previous line's time); ties keep order."""
    timed, at = [], 0.0
    for line in lines:
        at = line.time if line.time is not None else at
        timed.append((at, line))
    return sorted(timed, key=lambda pair: pair[0])


def _number(line: ScenarioLine, text: str) -> float:
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise ConfigError(f"{line.source}: {line.callable}: {exc}") from None


def _seconds(line: ScenarioLine, text: str) -> float:
    """A duration argument, read exactly as `harness validate` reads it (1200ms, 0.02m, 2m)."""
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise ConfigError(f"{line.source}: {line.callable}: {exc}") from None


def _dig(value: Any, dotted: str) -> Any:
    """value["a"][0]["b"] for "a.0.b"; KeyError/IndexError/TypeError when the path is absent."""
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value[part]
        else:
            raise TypeError(part)
    return value


def _field_value(url: str, dotted: str) -> tuple[bool, Any]:
    """(True, the JSON field at `dotted` of GET url), or (False, what went wrong)."""
    try:
        status, body = http_request(url, timeout=5)
    except OSError as exc:
        return False, f"no answer ({exc})"
    if not 200 <= status < 300:
        return False, f"HTTP {status}"
    try:
        document = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return False, "an answer that is not JSON"
    try:
        return True, _dig(document, dotted)
    except (KeyError, IndexError, TypeError, ValueError):
        return False, f"no field {dotted}"


def _matches(found: Any, wanted: str) -> bool:
    """VALUE is read as JSON when it parses (1, true, null), else as text."""
    try:
        value = json.loads(wanted)
    except ValueError:
        value = wanted
    return found == value and type(found) is type(value) or found == wanted


class _Timeline:
    """Runs a scenario against a started SubjectGroup."""

    def __init__(self, experiment: Experiment, group: SubjectGroup, rate: float | None,
                 progress: Progress | None) -> None:
        self.experiment, self.group, self.rate, self.progress = experiment, group, rate, progress
        self.window = _Window()
        self.load: _BackgroundLoad | None = None
        self.origin = 0.0

    def run(self) -> _Window:
        self.origin = time.monotonic() + SAMPLE_LEAD
        with _Samplers(self.experiment, self.group, self.origin) as samplers:
            try:
                for due, line in _ordered(self.experiment.scenario):
                    delay = self.origin + due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    if self._call(line) == "end":
                        break
                self._finish_load()
            except BaseException:
                if self.load is not None:
                    self.load.cancel()
                raise
            self.window.duration = time.monotonic() - self.origin
        self.window.series = samplers.series()
        return self.window

    def _targets(self, line: ScenarioLine) -> list[int]:
        return list(line.instances) if line.instances else [i.number for i in self.group.instances]

    def _call(self, line: ScenarioLine) -> str:
        handler = getattr(self, f"_do_{line.callable}", None)
        if handler is None:
            raise ConfigError(
                f"{line.source}: unknown callable {line.callable!r}; use one of workload, get, "
                f"post, wait_for, sleep, stop, end."
            )
        handler(line)
        return line.callable

    def _do_workload(self, line: ScenarioLine) -> None:
        workload = self.experiment.workload
        if workload is None or self.load is not None:
            raise ConfigError(
                f"{line.source}: `workload` needs a [workload] table and may appear once per round."
            )
        rate = _number(line, line.args[0]) if line.args else self.rate or workload.rates[0]
        instance = line.instances[0] if line.instances else workload.instance
        start_at = time.monotonic() + driver_mod.START_LEAD
        self.window.load_instance = instance
        self.window.load_offset = start_at - self.origin
        self.load = _BackgroundLoad(workload, port=self.group.instance(instance).port, rate=rate,
                                    start_at=start_at, progress=self.progress)

    def _request(self, line: ScenarioLine, method: str) -> None:
        if not line.args:
            raise ConfigError(f"{line.source}: `{line.callable}` needs a path, e.g. /health")
        body = line.args[1].encode("utf-8") if method == "POST" and len(line.args) > 1 else None
        for number in self._targets(line):
            url = self.group.instance(number).url + line.args[0]
            try:
                status, _ = http_request(url, method=method, body=body, timeout=10,
                                         headers={"Content-Type": "application/json"})
            except OSError as exc:
                self.window.warnings.append(
                    f"{line.source}: {method} {line.args[0]} on instance {number} failed: {exc}")
                continue
            if not 200 <= status < 300:
                self.window.warnings.append(
                    f"{line.source}: {method} {line.args[0]} on instance {number} failed: "
                    f"HTTP {status}")

    def _do_get(self, line: ScenarioLine) -> None:
        self._request(line, "GET")

    def _do_post(self, line: ScenarioLine) -> None:
        self._request(line, "POST")

    def _do_wait_for(self, line: ScenarioLine) -> None:
        if len(line.args) < 3:
            raise ConfigError(f"{line.source}: usage: wait_for PATH FIELD VALUE [TIMEOUT], e.g. "
                              "wait_for /downloads downloads.0.state complete 2m")
        path, field_path, wanted = line.args[:3]
        limit = _seconds(line, line.args[3]) if len(line.args) > 3 else WAIT_FOR_TIMEOUT
        for number in self._targets(line):
            url = self.group.instance(number).url + path
            deadline = time.monotonic() + limit
            while True:
                found, seen = _field_value(url, field_path)
                if found and _matches(seen, wanted):
                    break
                if time.monotonic() > deadline:
                    raise SubjectError(
                        f"{line.source}: instance {number}: GET {path} field {field_path} was "
                        f"not {wanted!r} within {limit:g} s (last seen: {seen}); raise the "
                        f"TIMEOUT argument or check the subject's log in {self.group.log_dir}."
                    )
                self.group.check_alive(self._targets(line))
                time.sleep(WAIT_FOR_INTERVAL)

    def _do_sleep(self, line: ScenarioLine) -> None:
        time.sleep(_seconds(line, line.args[0]) if line.args else 0.0)

    def _do_stop(self, line: ScenarioLine) -> None:
        self.group.stop(self._targets(line))

    def _do_end(self, line: ScenarioLine) -> None:
        del line  # the timeline stops after this line; _finish_load waits for the workload

    def _finish_load(self) -> None:
        if self.load is not None:
            self.window.load = self.load.join()


# -- rounds ----------------------------------------------------------------------------------------


def _shift(log: RequestLog, offset: float) -> RequestLog:
    """Request times moved to the window's origin (a scenario workload starts later)."""
    if not offset:
        return log
    return RequestLog(
        endpoint=log.endpoint, intended=tuple(t + offset for t in log.intended),
        sent=tuple(t + offset for t in log.sent), latency=log.latency, service=log.service,
        status=log.status, nbytes=log.nbytes, error=log.error)


def _validity(experiment: Experiment, window: _Window) -> str | None:
    load = window.load
    if load is None:
        return None
    if not load.valid:
        return load.invalid_reason
    errors = [e for e in load.log.error if e is not None]
    limit = experiment.workload.max_error_rate if experiment.workload else 0.0
    if load.log.intended and len(errors) / len(load.log) > limit:
        return (
            f"{len(errors)} of {len(load.log)} requests failed ({len(errors) / len(load.log):.1%}"
            f" > max_error_rate {limit:.1%}); first error: {errors[0]}; check the subject's logs"
        )
    return None


def _error_kinds(log: RequestLog, retries: int = 0) -> dict[str, int]:
    """How many requests failed in each class (connect, reset, timeout, http_status, ...), and
    how many were retried on a fresh connection ("retried", not failures)."""
    kinds: dict[str, int] = {"retried": retries} if retries else {}
    for error in log.error:
        if error is not None:
            kind = driver_mod.error_kind(error)
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _summary(log: RequestLog, load: driver_mod.DriverResult | None, series: ResourceSeries | None,
             probes: dict[str, Any], duration: float) -> dict[str, float | None]:
    summary: dict[str, float | None] = {}
    if len(log) and load is not None:
        summary.update(request_metrics(log, load.duration))
    summary.update(resource_metrics(series, len(log), duration))
    summary.update(probes_mod.probe_metrics(probes, len(log)))
    return summary


def run_round(
    experiment: Experiment,
    *,
    index: int,
    side: str,
    step: float | None,
    work_dir: Path,
    project_root: Path,
    python: str,
    progress: Progress | None = None,
) -> list[Round]:
    """One fresh start of the subject, its workload or scenario, one Round per instance."""
    workload = experiment.workload
    rate = step if step is not None else (workload.rates[0] if workload else None)
    round_dir = Path(work_dir) / f"round-{index}"
    if round_dir.exists():
        shutil.rmtree(round_dir)
    started_at = utc_now()
    group = SubjectGroup(experiment.subject, probes=experiment.probes, work_dir=round_dir,
                         project_root=project_root, python=python, variables=experiment.variables)
    calibrator = Calibrator() if experiment.rounds.calibration else None
    with group:
        with group.watch():
            if experiment.scenario:
                if calibrator is not None:
                    calibrator.before()
                window = _Timeline(experiment, group, rate, progress).run()
                if calibrator is not None:
                    calibrator.after()
            else:
                assert rate is not None or workload is None
                window = _plain_window(experiment, group, rate or 0.0, progress, calibrator)
        deaths = group.deaths()
    reason = "; ".join(deaths) if deaths else _validity(experiment, window)
    for death in deaths:  # at once, not only in results.json: a dead peer reads as an improvement
        print(f"harness: round {index} ({side}) is invalid: {death}", file=sys.stderr, flush=True)
    warnings = tuple(group.warnings + window.warnings)
    rounds = []
    for instance in group.instances:
        probes = group.probe_data(instance)
        # injection and probe failures are the round's warnings, recorded in results.json
        probe_warnings = tuple(w for w in probes.pop("warnings", ()) if w not in warnings)
        loaded = window.load is not None and instance.number == window.load_instance
        log = RequestLog()
        if loaded and window.load is not None:
            log = _shift(window.load.log, window.load_offset)
        series = window.series.get(instance.number)
        summary = _summary(log, window.load if loaded else None, series, probes, window.duration)
        rounds.append(Round(
            index=index, side=side, instance=instance.number, step=step, started_at=started_at,
            duration=window.duration, valid=reason is None, invalid_reason=reason,
            requests=log, resources=series, probes=probes,
            summary=summary, warnings=warnings + probe_warnings,
            stop=instance.stop_outcome.to_json() if instance.stop_outcome else None,
            errors=_error_kinds(log, window.load.retries if loaded and window.load else 0)
            or None,
            endpoints=endpoint_metrics(log, summary.get("cpu_seconds"), probes),
            calibration=calibrator.record() if calibrator is not None else None,
        ))
        shutil.rmtree(instance.state_dir, ignore_errors=True)  # can be large; logs stay
    return rounds


# -- experiments -----------------------------------------------------------------------------------


def _python_version(python: str) -> str | None:
    if Path(python) == Path(sys.executable):
        return None  # collect_environment records this interpreter's version itself
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def rate_steps(experiment: Experiment) -> list[float | None]:
    """The steps of a round: one per rate of a sweep, or a single unnamed step (None)."""
    rates = experiment.workload.rates if experiment.workload else ()
    return list(rates) if len(rates) > 1 else [None]


def with_instructions(results: Results, experiment: Experiment, *, work_dir: Path,
                      project_root: Path, python: str) -> Results:
    """`results` plus the instruction-count tier's data when the experiment enables the tier."""
    if not experiment.instructions.enabled:
        return results
    from harness.instructions import run_instruction_tier  # valgrind runs only when asked

    data = run_instruction_tier(experiment, work_dir=work_dir, project_root=project_root,
                                python=python)
    from harness.pyfunctions import run_function_profile  # Python functions, same sequence

    data["python"] = run_function_profile(experiment, work_dir=work_dir,
                                          project_root=project_root, python=python)
    return dataclasses.replace(results, instructions=data)


def build_results(experiment: Experiment, rounds: list[Round] | tuple[Round, ...], *, label: str,
                  project_root: Path, python: str) -> Results:
    """The Results of an experiment's rounds with its environment fingerprint."""
    policies = {
        name: {k: v for k, v in asdict(policy).items() if v is not None}
        for name, policy in sorted(experiment.metrics.items())
    }
    info = ExperimentInfo(name=experiment.name, path=experiment.path, sha256=experiment.sha256,
                          variables=dict(experiment.variables), policies=policies)
    environment = collect_environment(experiment_hash=experiment.sha256,
                                      subject_dir=Path(project_root),
                                      python_version=_python_version(python))
    warnings: list[str] = []
    for r in rounds:
        warnings += [w for w in r.warnings if w not in warnings]
        if not r.valid and r.invalid_reason:
            note = f"round {r.index} ({r.side}, step {r.step}) is invalid: {r.invalid_reason}"
            warnings += [note] if note not in warnings else []
    order = [[r.index, r.side, r.step] for r in rounds if r.instance == 1]
    return Results(label=label, experiment=info, environment=environment, rounds=tuple(rounds),
                   created_at=utc_now(), warnings=tuple(warnings), session={
                       "order": order,  # the verdict reads the error limit from here
                       "max_error_rate": experiment.workload.max_error_rate
                       if experiment.workload else None})


def _prepared(experiment: Experiment, root: Path, python: str, label: str) -> Experiment:
    """The experiment after its `[subject] prepare` step (run once, kept in .perf-cache)."""
    if not experiment.subject.prepare:
        return experiment
    from harness.prepare import prepare_side
    from harness.worktree import Checkout, cache_dir

    subject = prepare_side(experiment.subject, Checkout(root=root, commit=None, python=python),
                           cache=cache_dir(root), label=label, log=print)
    return dataclasses.replace(experiment, subject=subject)


def run_experiment(
    experiment: Experiment,
    *,
    out_dir: Path,
    label: str,
    rounds: int | None = None,
    progress: bool = True,
    project_root: Path | None = None,
    python: str | None = None,
) -> Results:
    """Run every round and rate step, then write out_dir/results.json atomically.

    An older results.json in out_dir is removed first, so a failed or interrupted run never leaves
    a file that could pass for its result. Subject logs stay under out_dir/work/.
    """
    out_dir = Path(out_dir).resolve()  # {state_dir} and {out_dir} are absolute for the subject
    root = Path(project_root) if project_root is not None else Path.cwd()
    python = python or sys.executable
    count = rounds if rounds is not None else experiment.rounds.count
    if count < 1:
        raise ConfigError(f"rounds must be at least 1, got {count}")
    steps = rate_steps(experiment)
    target = out_dir / "results.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    work_dir = out_dir / "work"
    shutil.rmtree(work_dir, ignore_errors=True)
    experiment = _prepared(experiment, root, python, label)
    collected: list[Round] = []
    with sigterm_as_interrupt(), Progress(count * len(steps), enabled=progress) as bar:
        for number in range(count):
            for position, step in enumerate(steps):
                index = number * len(steps) + position
                at = "" if step is None else f" at {step:g} req/s"
                bar.round_started(index + 1, f"{label}{at}")
                collected += run_round(experiment, index=index, side=label, step=step,
                                       work_dir=work_dir, project_root=root, python=python,
                                       progress=bar)
        results = build_results(experiment, collected, label=label, project_root=root,
                                python=python)
        results = with_instructions(results, experiment, work_dir=work_dir / "instructions",
                                    project_root=root, python=python)
    save_results(results, target)
    return results
