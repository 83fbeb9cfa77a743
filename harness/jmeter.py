"""Apache JMeter as the load driver: find it, write or take a plan, run it non-GUI, read its JTL.

An experiment with `driver = "jmeter"` in [workload] runs JMeter instead of the built-in open-loop
driver, inside the same lifecycle (fresh subject, resource sampling, probes). The plan is either the
user's own `.jmx` (`jmx = "plan.jmx"`) or one generated from the workload: a CSV of endpoint
numbers drawn exactly as the built-in driver draws them (same seed), a Switch Controller choosing
the endpoint's HTTP sampler, and a Constant Throughput Timer shared by all threads holding the rate.
Numbers reach the plan as JMeter properties (-J), so a user's plan reads them with ${__P(name)}:

    host, port        where the subject listens (127.0.0.1 and its port)
    rate              requests per second; throughput the same per minute (the timer's unit)
    requests          requests to send (with a duration: rate x duration, the planned count)
    duration          seconds to run (0 when the workload gives a request count)
    threads           threads to start, sized from the rate and the expected latency
    rampup            seconds over which to start them (threads / rate: no burst at the start)
    timeout_ms        per-request response timeout in milliseconds
    sequence          the generated plan's endpoint CSV (one endpoint number per request)

JMeter writes a CSV JTL with a header; harness.jtl turns it into our per-request records. JMeter's
timers are closed-loop, so there is no intended send time: latency is measured from the actual
send and the round carries harness.jtl.CLOSED_LOOP_WARNING. The lag figures compare each actual
send with an ideal constant schedule starting at JMeter's first send.

Debian's JMeter 2.13 with XStream >= 1.4.18 refuses to load any plan (ForbiddenClassException on
org.apache.jmeter.save.ScriptWrapper): XStream has no property or system setting that relaxes its
type allow-list. On that layout the harness starts JMeter through a small Groovy launcher
(LAUNCHER) that allows org.apache.jmeter.** and org.apache.jorphan.** on JMeter's two XStream
instances and then calls JMeter's own entry point with the usual arguments.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from harness.driver import (
    DriverResult,
    ProgressCallback,
    arrival_times,
    choose_endpoints,
    lag_stats,
    pool_size,
)
from harness.errors import HarnessError
from harness.experiment import Endpoint, Workload
from harness.jtl import CLOSED_LOOP_WARNING, JtlError, Sample, read_jtl, request_log
from harness.process import start_process, stop_process_tree

DEBIAN_HOME = Path("/usr/share/jmeter")
GROOVY_JARS = ("/usr/share/java/groovy-all.jar", "/usr/share/java/groovy.jar")
INSTALL_HINT = ("install it: `sudo apt-get install jmeter jmeter-http` on Debian/Ubuntu (plus "
                "groovy for the XStream launcher), or put Apache JMeter's bin/jmeter on PATH, "
                "or set HARNESS_JMETER to its path")
JVM_START_ALLOWANCE = 60.0  # seconds JMeter may take beyond the planned load before it is stopped
HELD_SHARE = 0.9  # share of the run all threads spent waiting for answers: the subject's lag
THREADS_HELD = "threads were all waiting on the subject"  # marks a lag the subject caused
JTL_SLACK = 0.005  # seconds of a JTL sample's end that may overlap its thread's next start

# CSV JTL with a header and the columns harness.jtl reads; start time stamps in ms.
SAVE_PROPERTIES = {
    "jmeter.save.saveservice.output_format": "csv",
    "jmeter.save.saveservice.print_field_names": "true",
    "jmeter.save.saveservice.timestamp_format": "ms",
    "jmeter.save.saveservice.default_delimiter": ",",
    "jmeter.save.saveservice.label": "true",
    "jmeter.save.saveservice.time": "true",
    "jmeter.save.saveservice.response_code": "true",
    "jmeter.save.saveservice.response_message": "true",
    "jmeter.save.saveservice.successful": "true",
    "jmeter.save.saveservice.bytes": "true",
    "jmeter.save.saveservice.latency": "true",
    "jmeter.save.saveservice.assertion_results_failure_message": "true",
    "sampleresult.timestamp.start": "true",
    "summariser.name": "",  # no periodic summary lines in the log
}

LAUNCHER = """\
// perf-harness: start JMeter with XStream allowed to load JMeter's own classes.
// XStream >= 1.4.18 denies every type not allowed explicitly and has no property to change
// that, so the allow-list is extended here before JMeter loads the plan.
import org.apache.jmeter.util.JMeterUtils
import org.apache.jmeter.save.SaveService
def home = System.getProperty("jmeter.home")
JMeterUtils.setJMeterHome(home)
JMeterUtils.loadJMeterProperties(home + "/bin/jmeter.properties")
for (name in ["JMXSAVER", "JTLSAVER"]) {
    def field = SaveService.getDeclaredField(name)
    field.accessible = true
    def ours = ["org.apache.jmeter.**", "org.apache.jorphan.**"] as String[]
    field.get(null).allowTypesByWildcard(ours)
}
new org.apache.jmeter.JMeter().start(args)
"""


class JMeterError(HarnessError):
    """JMeter is missing, refused the plan, or wrote no usable results."""


# -- finding JMeter --------------------------------------------------------------------------------


def _debian_classpath(home: Path) -> list[str]:
    """ApacheJMeter.jar's manifest Class-Path plus lib/ and lib/ext/ (what NewDriver would load)."""
    launcher = home / "bin" / "ApacheJMeter.jar"
    with zipfile.ZipFile(launcher) as jar:
        manifest = jar.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    joined = manifest.replace("\r\n", "\n").replace("\n ", "")
    entries: list[str] = []
    for line in joined.splitlines():
        if line.startswith("Class-Path:"):
            entries += line.split(":", 1)[1].split()
    entries += sorted(str(p) for p in (home / "lib").glob("*.jar"))
    entries += sorted(str(p) for p in (home / "lib" / "ext").glob("*.jar"))
    return [*entries, str(launcher)]


def jmeter_command(work_dir: Path) -> list[str]:
    """The command that starts JMeter here (before its own arguments).

    HARNESS_JMETER names a jmeter script to use as it is. Otherwise Debian's layout is started
    through the Groovy launcher (XStream allow-list, see the module docstring), and anything else
    through `jmeter` on PATH.
    """
    override = os.environ.get("HARNESS_JMETER")
    if override:
        if not Path(override).exists() and shutil.which(override) is None:
            raise JMeterError(f"HARNESS_JMETER={override!r} does not exist; {INSTALL_HINT}.")
        return [override]
    java = shutil.which("java")
    groovy = next((j for j in GROOVY_JARS if Path(j).exists()), None)
    if (DEBIAN_HOME / "bin" / "ApacheJMeter.jar").exists() and java and groovy:
        if not (DEBIAN_HOME / "lib" / "ext" / "ApacheJMeter_http.jar").exists():
            raise JMeterError("JMeter is installed without its HTTP samplers; install them: "
                              "`sudo apt-get install jmeter-http`.")
        script = Path(work_dir) / "jmeter-launch.groovy"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(LAUNCHER, encoding="utf-8")
        classpath = os.pathsep.join([*_debian_classpath(DEBIAN_HOME), groovy])
        return [java, "-cp", classpath, f"-Djmeter.home={DEBIAN_HOME}",
                "groovy.ui.GroovyMain", str(script)]
    found = shutil.which("jmeter")
    if found is None:
        raise JMeterError(f"the workload asks for driver = \"jmeter\", but JMeter is not "
                          f"installed; {INSTALL_HINT}.")
    return [found]


# -- the generated plan ----------------------------------------------------------------------------


def _prop(kind: str, name: str, value: str | int | bool) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f'<{kind} name="{name}">{escape(text)}</{kind}>'


def _sampler(endpoint: Endpoint) -> str:
    body = endpoint.body or ""
    arguments = (
        '<elementProp name="HTTPsampler.Arguments" elementType="Arguments"><collectionProp '
        'name="Arguments.arguments"><elementProp name="" elementType="HTTPArgument">'
        + _prop("boolProp", "HTTPArgument.always_encode", False)
        + _prop("stringProp", "Argument.value", body)
        + _prop("stringProp", "Argument.metadata", "=")
        + "</elementProp></collectionProp></elementProp>"
    ) if body else (
        '<elementProp name="HTTPsampler.Arguments" elementType="Arguments">'
        '<collectionProp name="Arguments.arguments"/></elementProp>'
    )
    headers = dict(endpoint.headers)
    if body:
        headers.setdefault("Content-Type", "application/json")
    manager = ""
    if headers:
        rows = "".join(
            f'<elementProp name={quoteattr(k)} elementType="Header">'
            + _prop("stringProp", "Header.name", k) + _prop("stringProp", "Header.value", v)
            + "</elementProp>" for k, v in headers.items())
        manager = ('<hashTree><HeaderManager guiclass="HeaderPanel" testclass="HeaderManager" '
                   'testname="headers" enabled="true">'
                   f'<collectionProp name="HeaderManager.headers">{rows}</collectionProp>'
                   '</HeaderManager><hashTree/></hashTree>')
    return (
        f'<HTTPSamplerProxy guiclass="HttpTestSampleGui" testclass="HTTPSamplerProxy" '
        f'testname={quoteattr(endpoint.name)} enabled="true">{arguments}'
        + _prop("stringProp", "HTTPSampler.domain", "${__P(host,127.0.0.1)}")
        + _prop("stringProp", "HTTPSampler.port", "${__P(port,8080)}")
        + _prop("stringProp", "HTTPSampler.protocol", "http")
        + _prop("stringProp", "HTTPSampler.path", endpoint.path)
        + _prop("stringProp", "HTTPSampler.method", endpoint.method.upper())
        + _prop("boolProp", "HTTPSampler.use_keepalive", True)
        + _prop("boolProp", "HTTPSampler.follow_redirects", False)
        + _prop("boolProp", "HTTPSampler.postBodyRaw", bool(body))
        + _prop("stringProp", "HTTPSampler.connect_timeout", "${__P(timeout_ms,10000)}")
        + _prop("stringProp", "HTTPSampler.response_timeout", "${__P(timeout_ms,10000)}")
        + _prop("stringProp", "HTTPSampler.implementation", "HttpClient4")
        + "</HTTPSamplerProxy>" + (manager or "<hashTree/>")
    )


def generate_plan(workload: Workload, *, timed: bool) -> str:
    """A JMeter test plan (.jmx) for the workload's endpoints; numbers come from -J properties.

    `timed`: the thread group runs for ${__P(duration)} seconds (recycling the endpoint CSV);
    otherwise the threads stop when the CSV, one row per request, is used up.
    """
    samplers = "".join(_sampler(e) for e in workload.endpoints)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<jmeterTestPlan version="1.2" properties="2.8" jmeter="2.13">\n<hashTree>\n'
        '<TestPlan guiclass="TestPlanGui" testclass="TestPlan" testname="perf-harness" '
        'enabled="true">'
        + _prop("boolProp", "TestPlan.functional_mode", False)
        + _prop("boolProp", "TestPlan.serialize_threadgroups", False)
        + '<elementProp name="TestPlan.user_defined_variables" elementType="Arguments" '
          'guiclass="ArgumentsPanel" testclass="Arguments" enabled="true">'
          '<collectionProp name="Arguments.arguments"/></elementProp>'
        + _prop("stringProp", "TestPlan.user_define_classpath", "")
        + '</TestPlan>\n<hashTree>\n'
        '<ThreadGroup guiclass="ThreadGroupGui" testclass="ThreadGroup" testname="load" '
        'enabled="true">'
        + _prop("stringProp", "ThreadGroup.on_sample_error", "continue")
        + '<elementProp name="ThreadGroup.main_controller" elementType="LoopController" '
          'guiclass="LoopControlPanel" testclass="LoopController" enabled="true">'
        + _prop("boolProp", "LoopController.continue_forever", False)
        + _prop("stringProp", "LoopController.loops", "-1")
        + '</elementProp>'
        + _prop("stringProp", "ThreadGroup.num_threads", "${__P(threads,1)}")
        + _prop("stringProp", "ThreadGroup.ramp_time", "${__P(rampup,0)}")
        + _prop("boolProp", "ThreadGroup.scheduler", timed)
        + _prop("stringProp", "ThreadGroup.duration", "${__P(duration,10)}" if timed else "")
        + _prop("stringProp", "ThreadGroup.delay", "")
        + '</ThreadGroup>\n<hashTree>\n'
        '<CSVDataSet guiclass="TestBeanGUI" testclass="CSVDataSet" testname="endpoint sequence" '
        'enabled="true">'
        + _prop("stringProp", "filename", "${__P(sequence)}")
        + _prop("stringProp", "fileEncoding", "UTF-8")
        + _prop("stringProp", "variableNames", "endpoint")
        + _prop("stringProp", "delimiter", ",")
        + _prop("boolProp", "quotedData", False)
        + _prop("boolProp", "recycle", timed)
        + _prop("boolProp", "stopThread", not timed)
        + _prop("stringProp", "shareMode", "shareMode.all")
        + '</CSVDataSet><hashTree/>\n'
        '<ConstantThroughputTimer guiclass="TestBeanGUI" testclass="ConstantThroughputTimer" '
        'testname="rate" enabled="true">'
        + _prop("intProp", "calcMode", 4)  # 4: shared by the thread group: one schedule
        + _prop("stringProp", "throughput", "${__P(throughput,60)}")
        + '</ConstantThroughputTimer><hashTree/>\n'
        '<SwitchController guiclass="SwitchControllerGui" testclass="SwitchController" '
        'testname="endpoint" enabled="true">'
        + _prop("stringProp", "SwitchController.value", "${endpoint}")
        + f'</SwitchController>\n<hashTree>\n{samplers}\n</hashTree>\n'
        '</hashTree>\n</hashTree>\n</hashTree>\n</jmeterTestPlan>\n'
    )


# -- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JMeterRun:
    """Where one JMeter run keeps its files."""

    directory: Path

    @property
    def jtl(self) -> Path:
        return self.directory / "results.jtl"

    @property
    def log(self) -> Path:
        return self.directory / "jmeter.log"

    @property
    def output(self) -> Path:
        return self.directory / "jmeter.out"


def properties(workload: Workload, *, port: int, rate: float, requests: int | None,
               duration: float | None, expected_latency: float,
               sequence: Path) -> dict[str, str]:
    """The -J properties of one run (documented in the module docstring).

    `requests` is always the planned count (rate x duration for a timed run), so a plan that only
    counts requests, such as experiments/api-stress.jmx, also serves a timed warm-up.
    """
    if requests is None:
        requests = len(arrival_times(rate, duration=duration or 0.0)) if duration else 0
    threads = workload.connections or min(pool_size(rate, expected_latency), 200)
    return {
        "host": "127.0.0.1", "port": str(port), "rate": f"{rate:g}",
        "throughput": f"{rate * 60:g}", "requests": str(requests),
        "duration": str(math.ceil(duration)) if duration else "0", "threads": str(threads),
        "rampup": str(rampup(threads, rate)),
        "timeout_ms": str(round(workload.timeout * 1000)), "sequence": str(sequence),
    }


def rampup(threads: int, rate: float) -> int:
    """Seconds over which JMeter starts its threads: one thread per scheduled send.

    The Constant Throughput Timer does not delay a thread's first request, so threads started at
    once send a burst of `threads` requests at the start; spread over threads / rate seconds they
    start about when the schedule wants their first request (JMeter counts whole seconds).
    """
    return round(threads / rate) if rate > 0 else 0


def _failure(run: JMeterRun, code: int | None) -> str:
    """JMeter's own words about why it failed: its first error line, and where in the plan."""
    lines: list[str] = []
    for path in (run.output, run.log):
        if path.exists():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    first = next((i for i, ln in enumerate(lines) if "Error" in ln or "ERROR" in ln
                  or "Exception" in ln or ln.startswith("Could not open")), None)
    if first is None:
        return f"exit code {code}, no error message. Full log: {run.log}"
    detail = lines[first].strip().rstrip(":")[:400]
    where = []  # XStream's debugging block: which element of the plan, on which line
    for line in lines[first + 1:first + 20]:
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("cause-message", "path", "line number") and value.strip():
            where.append(f"{key.strip()} {value.strip()}")
    hint = ""
    if "ForbiddenClassException" in detail:
        hint = (" XStream refused JMeter's own classes: let the harness start Debian's JMeter "
                "through its launcher (unset HARNESS_JMETER), or use JMeter 5.4.2 or later.")
    located = f" ({', '.join(where)})" if where else ""
    return f"{detail}{located}.{hint} Full log: {run.log}"


def run_jmeter(plan: Path, *, props: dict[str, str], run: JMeterRun, timeout: float) -> None:
    """Run JMeter non-GUI on `plan` and wait; raise JMeterError with JMeter's message on failure."""
    run.directory.mkdir(parents=True, exist_ok=True)
    run.jtl.unlink(missing_ok=True)
    plan = Path(plan).resolve()  # JMeter runs in the run's directory
    argv = [*jmeter_command(run.directory), "-n", "-t", str(plan), "-l", str(run.jtl),
            "-j", str(run.log)]
    argv += [f"-J{k}={v}" for k, v in {**SAVE_PROPERTIES, **props}.items()]
    with run.output.open("wb") as out:
        try:
            proc = start_process(argv, cwd=run.directory, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise JMeterError(f"{argv[0]}: cannot start JMeter ({exc.strerror}); "
                              f"{INSTALL_HINT}.") from exc
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise JMeterError(f"JMeter did not finish within {timeout:.0f} s and was stopped; "
                              f"see {run.log}.") from None
        finally:
            stop_process_tree(proc, timeout=5)  # also after an interrupt: no JVM left behind
    text = run.output.read_text(encoding="utf-8", errors="replace")
    if code != 0 or "Error in NonGUIDriver" in text or "Could not open" in text \
            or not run.jtl.exists():
        raise JMeterError(f"JMeter could not run {plan}: {_failure(run, code)}")


def threads_held(samples: Sequence[Sample]) -> tuple[int, float]:
    """The most requests JMeter had in flight at once, and the share of the run that many
    threads spent waiting for answers (1.0: every one always waiting). JMeter's loop is closed: a
    thread sends its next request only after the last one's answer, so when the subject answers
    too slowly every thread waits and the schedule slips, with JMeter itself idle."""
    if not samples:
        return 0, 0.0
    # JTL times are whole milliseconds, and a thread's next start is stamped apart from the last
    # answer's elapsed time: a few ms of apparent overlap are not one more thread
    events = sorted([(s.start, 1) for s in samples]
                    + [(s.start + max(0.0, s.elapsed - JTL_SLACK), -1) for s in samples])
    peak = in_flight = 0
    for _, step in events:  # at equal times an answer (-1) comes before the next send (+1)
        in_flight += step
        peak = max(peak, in_flight)
    span = max(s.start + s.elapsed for s in samples) - events[0][0]
    waiting = sum(s.elapsed for s in samples)
    return peak, (waiting / (peak * span) if span > 0 else 1.0)


def _schedule_lag(starts: Sequence[float], rate: float) -> list[float]:
    """How late each send was against a constant schedule from the first send (seconds)."""
    ordered = sorted(starts)
    return [s - (ordered[0] + i / rate) for i, s in enumerate(ordered)] if ordered else []


def run_workload(
    workload: Workload,
    *,
    port: int,
    rate: float,
    work_dir: Path,
    requests: int | None = None,
    duration: float | None = None,
    expected_latency: float = 0.05,
    start_at: float | None = None,
    plan: Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> DriverResult:
    """Drive one workload with JMeter (blocking) and return the built-in driver's record type.

    `plan` is the user's .jmx (default: workload.jmx, else a generated plan). Recorded times are
    seconds from `start_at` (time.monotonic()), as with the built-in driver.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    origin_mono = time.monotonic() if start_at is None else start_at
    origin_wall = time.time() - (time.monotonic() - origin_mono)
    timed = requests is None
    count = len(arrival_times(rate, requests=requests, duration=duration))
    sequence = work_dir / "endpoints.csv"
    keys = choose_endpoints(workload.endpoints, count, workload.seed)
    sequence.write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    user_plan = plan or (Path(workload.jmx) if workload.jmx else None)
    if user_plan is None:
        plan_path = work_dir / "plan.jmx"
        plan_path.write_text(generate_plan(workload, timed=timed), encoding="utf-8")
    elif not user_plan.exists():
        raise JMeterError(f"{user_plan}: no such JMeter plan; check [workload] jmx.")
    else:
        plan_path = user_plan
    props = properties(workload, port=port, rate=rate, requests=requests, duration=duration,
                       expected_latency=expected_latency, sequence=sequence)
    planned = (duration or count / rate) + workload.timeout
    run = JMeterRun(work_dir)
    run_jmeter(plan_path, props=props, run=run, timeout=planned + JVM_START_ALLOWANCE)
    try:
        samples = read_jtl(run.jtl)
    except JtlError as exc:
        raise JMeterError(f"JMeter ran but its results cannot be read: {exc}") from exc
    if not samples:
        raise JMeterError(f"JMeter ran {plan_path} but recorded no samples; see {run.log}.")
    samples.sort(key=lambda s: s.start)
    if on_progress is not None:  # JMeter reports nothing while it runs; the count at the end
        on_progress(len(samples), count)
    log = request_log(samples, origin_wall)
    first = samples[0].start - origin_wall
    span = max(log.sent[-1] - first + 1.0 / rate,
               max(t + d for t, d in zip(log.sent, log.latency, strict=True)) - first)
    lag = lag_stats(_schedule_lag([s.start for s in samples], rate), "lag")
    reason = None
    if lag["lag_p99"] > workload.max_lag:
        reason = (f"JMeter fell behind its constant-rate schedule: p99 lag "
                  f"{lag['lag_p99'] * 1000:.1f} ms > max_lag {workload.max_lag * 1000:.1f} ms at "
                  f"{rate:g} req/s")
        peak, share = threads_held(samples)
        if share >= HELD_SHARE:
            reason += (f"; its {peak} {THREADS_HELD} ({share:.0%} of the run): the subject "
                       f"answered too slowly for this rate with {peak} threads")
        else:
            reason += ("; raise [workload] connections (JMeter threads), lower the rate, or "
                       "raise max_lag")
    return DriverResult(log=log, duration=span, lag=lag, connections=int(props["threads"]),
                        valid=reason is None, invalid_reason=reason)


def driver_warnings() -> tuple[str, ...]:
    """What every round driven by JMeter carries into results.json and the comparison."""
    return (CLOSED_LOOP_WARNING,)
