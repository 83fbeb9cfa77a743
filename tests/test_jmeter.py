"""JMeter as the load driver: the generated plan, the experiment keys, errors, and real JMeter
against the reference subject beside the built-in driver."""

from __future__ import annotations

import shutil
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import jmeter
from harness.driver import choose_endpoints
from harness.experiment import Endpoint, Workload, load_experiment, validate_experiment
from harness.jtl import CLOSED_LOOP_WARNING
from harness.runner import run_experiment
from harness.stats import percentile

ROOT = Path(__file__).resolve().parents[1]
HAVE_JMETER = shutil.which("jmeter") is not None and shutil.which("java") is not None
needs_jmeter = pytest.mark.skipif(not HAVE_JMETER, reason="JMeter is not installed "
                                  "(apt-get install jmeter jmeter-http; CI installs it)")

WORKLOAD = Workload(
    endpoints=(Endpoint(path="/channels", name="channels"),
               Endpoint(path="/items", name="add", method="POST", weight=2.0, body='{"a": 1}',
                        headers={"X-Trace": "on & <off>"})),
    rates=(10.0,), requests=30)

# The reference subject, seeded small, so one round with JMeter takes a few seconds.
EXPERIMENT = """\
name = "jm"
[subject]
command = ["{python}", "-m", "subjects.peer", "serve", "--state-dir", "{state_dir}",
           "--port", "{port}", "--db", "worker", "--sync-interval", "0"]
setup = [["{python}", "-m", "subjects.peer", "seed", "--state-dir", "{state_dir}",
          "--channels", "200", "--torrents", "2000"]]
ready = { http = "/health", timeout = "60s" }

[workload]
DRIVER
rate = "20/s"
requests = 60
warmup = "0s"
max_lag = "1s"

[[workload.endpoints]]
name = "channels"
path = "/channels"

[[workload.endpoints]]
name = "health"
path = "/health"

[probes]
resources = true
"""


def test_generated_plan_is_xml_with_one_sampler_per_endpoint_in_order():
    root = ET.fromstring(jmeter.generate_plan(WORKLOAD, timed=False))
    samplers = root.findall(".//HTTPSamplerProxy")
    assert [s.get("testname") for s in samplers] == ["channels", "add"]
    paths = [s.find("stringProp[@name='HTTPSampler.path']").text for s in samplers]
    assert paths == ["/channels", "/items"]
    assert samplers[1].find("stringProp[@name='HTTPSampler.method']").text == "POST"
    body = samplers[1].find(".//stringProp[@name='Argument.value']").text
    assert body == '{"a": 1}'
    headers = {h.find("stringProp[@name='Header.name']").text:
               h.find("stringProp[@name='Header.value']").text
               for h in root.iter("elementProp") if h.get("elementType") == "Header"}
    assert headers == {"X-Trace": "on & <off>", "Content-Type": "application/json"}
    csv = root.find(".//CSVDataSet")
    assert csv.find("boolProp[@name='stopThread']").text == "true"  # stops after the last row
    assert root.find(".//ThreadGroup/boolProp[@name='ThreadGroup.scheduler']").text == "false"
    timed = ET.fromstring(jmeter.generate_plan(WORKLOAD, timed=True))
    assert timed.find(".//ThreadGroup/boolProp[@name='ThreadGroup.scheduler']").text == "true"


def test_properties_carry_rate_per_minute_and_size_the_threads(tmp_path):
    props = jmeter.properties(WORKLOAD, port=8123, rate=250, requests=1000, duration=None,
                              expected_latency=0.02, sequence=tmp_path / "s.csv")
    assert props["throughput"] == "15000" and props["rate"] == "250"
    assert props["requests"] == "1000" and props["duration"] == "0"
    assert props["port"] == "8123" and props["timeout_ms"] == "10000"
    assert int(props["threads"]) == 11  # 250/s x 20 ms x 2 + 1: twice the requests in flight
    assert props["rampup"] == "0"  # 11 threads at 250/s start within 44 ms
    timed = jmeter.properties(WORKLOAD, port=8123, rate=4, requests=None, duration=2.5,
                              expected_latency=0.02, sequence=tmp_path / "s.csv")
    assert timed["duration"] == "3" and timed["requests"] == "10"  # a count for count-only plans


def test_jmeter_missing_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_JMETER", raising=False)
    monkeypatch.setattr(jmeter, "DEBIAN_HOME", tmp_path / "none")
    monkeypatch.setattr(jmeter.shutil, "which", lambda name: None)
    with pytest.raises(jmeter.JMeterError, match="apt-get install jmeter jmeter-http"):
        jmeter.jmeter_command(tmp_path)
    monkeypatch.setenv("HARNESS_JMETER", str(tmp_path / "bin" / "jmeter"))
    with pytest.raises(jmeter.JMeterError, match="HARNESS_JMETER=.* does not exist"):
        jmeter.jmeter_command(tmp_path)


def _experiment(tmp_path: Path, driver: str, extra: str = "") -> Path:
    path = tmp_path / f"jm-{driver}.toml"
    path.write_text(EXPERIMENT.replace("DRIVER", f'driver = "{driver}"\n{extra}'))
    return path


def test_experiment_keys_of_the_jmeter_driver(tmp_path):
    (tmp_path / "plan.jmx").write_text("<jmeterTestPlan/>")
    experiment = load_experiment(_experiment(tmp_path, "jmeter", 'jmx = "plan.jmx"'))
    assert experiment.workload.driver == "jmeter"
    assert experiment.workload.jmx == (tmp_path / "plan.jmx").as_posix()
    missing = validate_experiment(_experiment(tmp_path, "jmeter", 'jmx = "gone.jmx"'))
    assert any("no such JMeter plan" in p and "gone.jmx" in p for p in missing), missing
    wrong = validate_experiment(_experiment(tmp_path, "harness", 'jmx = "plan.jmx"'))
    assert any('needs driver = "jmeter"' in p for p in wrong), wrong


@pytest.mark.integration
@needs_jmeter
def test_a_plan_jmeter_cannot_load_fails_with_jmeters_message(tmp_path):
    plan = tmp_path / "broken.jmx"
    plan.write_text('<?xml version="1.0"?>\n<jmeterTestPlan version="1.2">\n<hashTree>\n'
                    '<NoSuchElement testname="x"/>\n</hashTree>\n</jmeterTestPlan>\n')
    with pytest.raises(jmeter.JMeterError) as info:
        jmeter.run_workload(WORKLOAD, port=9, rate=10, requests=5, work_dir=tmp_path / "run",
                            plan=plan)
    message = str(info.value)
    assert "JMeter could not run" in message and "broken.jmx" in message
    assert "Problem loading XML" in message and "NoSuchElement" in message, message
    assert "line number 4" in message


def _median(log, endpoint: str) -> float:
    return percentile([t for t, e in zip(log.latency, log.endpoint, strict=True)
                       if e == endpoint], 50)


@pytest.mark.integration
@pytest.mark.slow
@needs_jmeter
def test_jmeter_and_the_builtin_driver_measure_the_reference_subject_alike(tmp_path):
    ours = run_experiment(load_experiment(_experiment(tmp_path, "harness")),
                          out_dir=tmp_path / "ours", label="ours", progress=False,
                          project_root=ROOT)
    theirs = run_experiment(load_experiment(_experiment(tmp_path, "jmeter")),
                            out_dir=tmp_path / "jmeter", label="jmeter", progress=False,
                            project_root=ROOT)
    a, b = ours.rounds[0], theirs.rounds[0]
    assert len(a.requests) == len(b.requests) == 60
    # the same endpoint sequence: JMeter's plan reads the built-in driver's seeded choice
    assert sorted(a.requests.endpoint) == sorted(b.requests.endpoint)
    assert b.summary["errors"] == 0 and a.summary["errors"] == 0
    assert set(b.requests.status) == {200}
    for name in ("channels", "health"):
        med_a, med_b = _median(a.requests, name), _median(b.requests, name)
        assert med_b / 10 < med_a < med_b * 10, (name, med_a, med_b)  # same unit, same range
    assert CLOSED_LOOP_WARNING in theirs.warnings and CLOSED_LOOP_WARNING not in ours.warnings
    assert b.summary["cpu_per_request"] is not None  # the lifecycle's probes ran around JMeter
    assert (tmp_path / "jmeter" / "results.json").exists()
    assert (tmp_path / "jmeter" / "work" / "round-0" / "instance-1" / "jmeter" /
            "results.jtl").exists()


class _Recorder(BaseHTTPRequestHandler):
    """Answers 200 (201 to a POST) and records method, path, body and two headers."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes, str | None, str | None]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, body, self.headers.get("X-Trace"),
                          self.headers.get("Content-Type")))
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer  # noqa: N815  # the http.server protocol

    def log_message(self, *args) -> None:
        del args


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Recorder.seen
    server.shutdown()
    server.server_close()


@pytest.mark.integration
@needs_jmeter
def test_the_generated_plan_sends_methods_bodies_and_headers(tmp_path, recorder):
    port, seen = recorder
    result = jmeter.run_workload(WORKLOAD, port=port, rate=20, requests=12, work_dir=tmp_path)
    assert len(result.log) == len(seen) == 12
    assert set(result.log.status) == {200, 201} and set(result.log.error) == {None}
    posts = [s for s in seen if s[0] == "POST"]
    assert posts and all(s == ("POST", "/items", b'{"a": 1}', "on & <off>", "application/json")
                         for s in posts)
    assert all(s[:3] == ("GET", "/channels", b"") for s in seen if s[0] == "GET")
    assert sorted(result.log.endpoint) == sorted(
        WORKLOAD.endpoints[k].name for k in choose_endpoints(WORKLOAD.endpoints, 12))


@pytest.mark.integration
@needs_jmeter
def test_the_shipped_thesis_plan_sends_exactly_the_requests_asked_for(tmp_path, recorder):
    port, seen = recorder
    workload = Workload(endpoints=(Endpoint(path="/channels", name="channels"),),
                        rates=(25.0,), requests=25, connections=3, driver="jmeter",
                        jmx=str(ROOT / "experiments" / "api-stress.jmx"))
    result = jmeter.run_workload(workload, port=port, rate=25, requests=25, work_dir=tmp_path)
    assert len(seen) == 25
    assert len(result.log) == 25  # the plan's throughput controller stops at `requests`
    assert set(result.log.endpoint) == {"channels"} and set(result.log.status) == {200}
    assert result.duration > 0.5  # 25 requests at 25/s cannot all leave at once


class _Sleeper(BaseHTTPRequestHandler):
    """Answers every request after 0.3 s of sleep: slow, with its CPU idle (a lock, a disk)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  # the http.server protocol
        time.sleep(0.3)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        del args


@pytest.mark.integration
@needs_jmeter
def test_a_slow_idle_subject_that_holds_every_jmeter_thread_is_named_as_the_cause(tmp_path):
    """20 req/s with 2 threads against 0.3 s answers: JMeter's closed loop can send at most
    about 7/s, so its schedule slips while JMeter and the subject both idle. The round's reason
    says the threads were all waiting on the subject, which makes it the subject's failure
    (an overload), not the harness'."""
    from harness.compare import round_failure
    from harness.results import Round

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sleeper)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workload = Workload(endpoints=(Endpoint(path="/slow", name="slow"),), rates=(20.0,),
                        requests=20, connections=2, driver="jmeter", max_lag=0.05)
    try:
        result = jmeter.run_workload(workload, port=server.server_address[1], rate=20,
                                     requests=20, work_dir=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert not result.valid and jmeter.THREADS_HELD in result.invalid_reason, \
        result.invalid_reason
    assert "its 2 threads were all waiting" in result.invalid_reason
    rnd = Round(index=0, side="candidate", instance=1, step=None, started_at="",
                duration=result.duration, valid=False, invalid_reason=result.invalid_reason,
                requests=result.log, summary={"cpu_seconds": 0.01})
    assert round_failure(rnd, max_error_rate=0.01)[0] == "overloaded"


def test_the_share_of_the_run_jmeters_threads_waited_on_the_subject():
    from harness.jtl import Sample

    def sample(start, elapsed):
        return Sample(start=start, elapsed=elapsed, label="x", code=200, success=True,
                      nbytes=2, message="OK", group="")

    # two threads, each sending again the moment its answer came: always both waiting
    held = [sample(start, 0.5) for start in (0.0, 0.5, 1.0, 1.5)] \
        + [sample(start, 0.5) for start in (0.0, 0.5, 1.0, 1.5)]
    assert jmeter.threads_held(held) == (2, pytest.approx(1.0))
    # quick answers far apart: the threads mostly idle, whatever made the schedule slip
    idle = [sample(start, 0.01) for start in (0.0, 0.3, 0.6, 0.9, 1.2)]
    peak, share = jmeter.threads_held(idle)
    assert peak == 1 and share < 0.1
    assert jmeter.threads_held([]) == (0, 0.0)


def test_jmeter_runs_plain_rounds_only_not_a_scenario(tmp_path):
    (tmp_path / "s.scenario").write_text("@0:00 workload\n@0:05 end\n")
    path = _experiment(tmp_path, "jmeter")
    path.write_text('scenario = "s.scenario"\n' + path.read_text())
    problems = validate_experiment(path)
    assert any('driver = "jmeter" runs plain rounds only' in p for p in problems), problems
