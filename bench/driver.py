"""Load drivers side by side in one run: our driver (asyncio, uvloop), wrk and JMeter against nginx.

    python bench/driver.py [--seconds 3] [--json FILE] [--skip jmeter,uvloop,wrk]

One target for every driver: nginx started from a config of our own in a temporary folder, on a
free port of 127.0.0.1, in the foreground as one process (no daemon, no master) pinned to the last
CPU, answering every request with a 2-byte body; it is stopped at the end. Every driver runs pinned
to CPU 0 (this process pins itself and its children inherit it), so every req/s figure is per core.
For each driver it reports

* the highest sustained rate on one core: closed loop (as fast as answers come back; wrk -t1
  -c32, our connection class with 32 connections, JMeter with 32 threads and no timer), and for the
  open-loop drivers the highest rate of STEPS kept on schedule (>= 95% answered, p99 lag <= 10 ms);
* CPU seconds the driver spends per 1,000 requests in the closed-loop run (our process's CPU
  time; wrk's and JMeter's from the child's rusage, JMeter's minus a one-request run so that the
  JVM's start-up is not counted);
* p50/p99/max lag behind the schedule at 100, 1,000 and 3,000 req/s (5 s at 100 req/s, else
  --seconds). Ours: how late each send left after its intended time. JMeter has no intended times
  (closed loop): its sends against an even schedule from its first send, so negative means early.
  wrk has no rate control at all (closed loop only): not applicable.

Results go to stdout as Markdown (docs/performance.md, "Load drivers side by side").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import driver  # noqa: E402
from harness.experiment import Endpoint, Workload  # noqa: E402
from harness.process import start_process, stop_process_tree  # noqa: E402
from harness.subject import free_ports, http_ok  # noqa: E402

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "ok"; }}
    }}
}}
"""

ENDPOINT = (Endpoint("/", "root"),)
SUSTAINED_LAG = 0.010  # p99 schedule lag up to which a rate counts as sustained
STEPS = (1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 14000, 16000, 20000, 24000,
         28000, 32000, 40000)
LAG_RATES = (100.0, 1000.0, 3000.0)
CONNECTIONS = 32
JMETER_OPEN_THREADS = 8

Loop = Callable[[], asyncio.AbstractEventLoop] | None


def pin(pid: int, cpu: int) -> bool:
    """Pin a process to one CPU (Linux only); False where the platform cannot."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(pid, {cpu})
    return True


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the target --------------------------------------------------------------------------------


def start_nginx(tmp: Path) -> tuple[subprocess.Popen, int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: sudo apt-get install nginx-light")
    port = free_ports(1)[0]
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
    proc = start_process([nginx, "-p", str(tmp), "-c", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pin(proc.pid, (os.cpu_count() or 1) - 1)
    deadline = time.monotonic() + 10
    while not http_ok(f"http://127.0.0.1:{port}/"):
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_process_tree(proc, timeout=2)
            raise RuntimeError(f"nginx did not start; see {tmp / 'error.log'}")
        time.sleep(0.05)
    return proc, port


# -- our driver --------------------------------------------------------------------------------


def _run(coro, loop_factory: Loop):
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


async def _closed_streams(port: int, seconds: float) -> int:
    """Closed loop with the driver's own connection class: how fast it can go at all."""
    request = driver.encode_request(ENDPOINT[0], "127.0.0.1", port)
    pool = driver._Pool("127.0.0.1", port, limit=CONNECTIONS)  # pylint: disable=protected-access
    await pool.fill(CONNECTIONS)
    end = time.monotonic() + seconds
    done = 0

    async def worker(conn) -> None:
        nonlocal done
        while time.monotonic() < end:
            await conn.exchange(request, False)
            done += 1

    await asyncio.gather(*(worker(c) for c in list(pool.idle)))
    pool.close()
    return done


def ours_closed(port: int, seconds: float, loop_factory: Loop) -> dict[str, float]:
    cpu = time.process_time()
    wall = time.perf_counter()
    done = _run(_closed_streams(port, seconds), loop_factory)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"req_per_s": done / wall, "cpu_s_per_1000": cpu / done * 1000}


def ours_open(port: int, rate: float, seconds: float, loop_factory: Loop) -> dict[str, float]:
    result = _run(driver.drive(ENDPOINT, port=port, rate=rate,
                               requests=max(50, int(rate * seconds)), max_lag=SUSTAINED_LAG,
                               expected_latency=0.002), loop_factory)
    ok = sum(1 for e in result.log.error if e is None)
    return {"rate": rate, "answered_per_s": ok / result.duration, **result.lag}


def ours_sustained(port: int, seconds: float, ceiling: float,
                   loop_factory: Loop) -> tuple[float, list[dict[str, float]]]:
    """The highest rate of STEPS (up to the closed-loop ceiling) kept on schedule."""
    best, tried = 0.0, []
    for rate in (float(r) for r in STEPS if r <= ceiling * 1.1):
        row = ours_open(port, rate, seconds, loop_factory)
        tried.append(row)
        if row["answered_per_s"] < 0.95 * rate or row["lag_p99"] > SUSTAINED_LAG:
            break
        best = rate
    return best, tried


def measure_ours(port: int, seconds: float, loop_factory: Loop) -> dict:
    closed = ours_closed(port, seconds, loop_factory)
    best, tried = ours_sustained(port, seconds, closed["req_per_s"], loop_factory)
    lag = [ours_open(port, r, 5.0 if r <= 100 else seconds, loop_factory) for r in LAG_RATES]
    return {**closed, "open_loop_sustained": best, "open_loop_steps": tried, "lag": lag}


# -- wrk ---------------------------------------------------------------------------------------


def measure_wrk(port: int, seconds: float) -> dict | None:
    if shutil.which("wrk") is None:
        return None
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s",
            f"http://127.0.0.1:{port}/"]
    cpu = children_cpu()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    cpu = children_cpu() - cpu
    rate = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
    total = re.search(r"(\d+) requests in", out.stdout)
    if not rate or not total:
        return None
    return {"req_per_s": float(rate.group(1)),
            "cpu_s_per_1000": cpu / int(total.group(1)) * 1000}


# -- JMeter ------------------------------------------------------------------------------------


def _jmeter_closed(port: int, seconds: float, work: Path) -> dict:
    """JMeter with CONNECTIONS threads and no effective timer for `seconds` (timed plan)."""
    from harness import jmeter
    from harness.jtl import read_jtl

    work.mkdir(parents=True, exist_ok=True)
    workload = Workload(endpoints=ENDPOINT, rates=(1.0,), duration=seconds, requests=None)
    plan = work / "plan.jmx"
    plan.write_text(jmeter.generate_plan(workload, timed=True))
    (work / "endpoints.csv").write_text("0\n")
    props = {"host": "127.0.0.1", "port": str(port), "threads": str(CONNECTIONS),
             "duration": str(max(1, round(seconds))), "throughput": "1e12",
             "timeout_ms": "10000", "sequence": str(work / "endpoints.csv")}
    run = jmeter.JMeterRun(work)
    cpu = children_cpu()
    jmeter.run_jmeter(plan, props=props, run=run, timeout=seconds + 120)
    cpu = children_cpu() - cpu
    samples = read_jtl(run.jtl)
    span = max(s.start + s.elapsed for s in samples) - min(s.start for s in samples)
    return {"requests": len(samples), "span": span, "cpu": cpu}


def _jmeter_idle_cpu(port: int, work: Path) -> float:
    """CPU of a JMeter run that sends (almost) nothing: the JVM's start and stop."""
    from harness import jmeter

    work.mkdir(parents=True, exist_ok=True)
    workload = Workload(endpoints=ENDPOINT, rates=(1.0,), requests=1)
    plan = work / "plan.jmx"
    plan.write_text(jmeter.generate_plan(workload, timed=False))
    (work / "endpoints.csv").write_text("0\n")
    props = {"host": "127.0.0.1", "port": str(port), "threads": "1", "throughput": "60",
             "timeout_ms": "10000", "sequence": str(work / "endpoints.csv")}
    cpu = children_cpu()
    jmeter.run_jmeter(plan, props=props, run=jmeter.JMeterRun(work), timeout=120)
    return children_cpu() - cpu


def measure_jmeter(port: int, seconds: float, work: Path) -> dict | None:
    from harness import jmeter

    try:
        jmeter.jmeter_command(work)
    except jmeter.JMeterError:
        return None
    long = max(seconds, 5.0)  # the JVM needs a few seconds of load before it is warm
    closed = _jmeter_closed(port, long, work / "closed")
    idle = _jmeter_idle_cpu(port, work / "idle")
    numbers: dict = {"req_per_s": closed["requests"] / closed["span"],
                     "cpu_s_per_1000": max(0.0, closed["cpu"] - idle) / closed["requests"] * 1000,
                     "jvm_start_cpu_s": idle, "lag": []}
    for rate in LAG_RATES:
        span = 5.0 if rate <= 100 else seconds
        workload = Workload(endpoints=ENDPOINT, rates=(rate,), requests=int(rate * span),
                            connections=JMETER_OPEN_THREADS, max_lag=10.0, driver="jmeter")
        result = jmeter.run_workload(workload, port=port, rate=rate, requests=int(rate * span),
                                     work_dir=work / f"open-{rate:g}")
        ok = sum(1 for e in result.log.error if e is None)
        numbers["lag"].append({"rate": rate, "answered_per_s": ok / result.duration,
                               **result.lag})
    return numbers


# -- the run -----------------------------------------------------------------------------------


def measure(seconds: float, skip: set[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="driver-bench-") as tmp:
        target, port = start_nginx(Path(tmp))
        pinned = pin(os.getpid(), 0)  # children (wrk, JMeter's JVM) inherit the pinning
        try:
            numbers: dict = {"cpus": os.cpu_count(), "pinned": pinned,
                             "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
            numbers["asyncio"] = measure_ours(port, seconds, None)
            numbers["uvloop"] = None
            if "uvloop" not in skip:
                try:
                    import uvloop
                except ImportError:
                    pass
                else:
                    numbers["uvloop"] = measure_ours(port, seconds, uvloop.new_event_loop)
            numbers["wrk"] = None if "wrk" in skip else measure_wrk(port, seconds)
            numbers["jmeter"] = (None if "jmeter" in skip
                                 else measure_jmeter(port, seconds, Path(tmp) / "jmeter"))
            return numbers
        finally:
            stop_process_tree(target, timeout=5)


def _lag(row: dict | None, index: int) -> str:
    if row is None:
        return "n/a | n/a | n/a"
    lag = row["lag"][index]
    return " | ".join(f"{lag[k] * 1000:.2f} ms" for k in ("lag_p50", "lag_p99", "lag_max"))


def render(numbers: dict) -> str:
    rows = [("our driver, asyncio", numbers["asyncio"]), ("our driver, uvloop", numbers["uvloop"]),
            ("wrk 4 -t1 -c32", numbers["wrk"]), ("JMeter 2.13", numbers["jmeter"])]
    lines = [
        f"CPUs: {numbers['cpus']}, drivers pinned to CPU 0: {numbers['pinned']}, "
        f"load average at the start: {numbers['load_average']}",
        "",
        f"Closed loop: {CONNECTIONS} connections (JMeter: {CONNECTIONS} threads); JMeter's open "
        f"loop: {JMETER_OPEN_THREADS} threads sharing a Constant Throughput Timer.",
        "",
        "| driver | closed loop req/s (one core) | open loop on schedule req/s | "
        "CPU s / 1,000 requests |",
        "|---|---:|---:|---:|",
    ]
    for name, row in rows:
        if row is None:
            lines.append(f"| {name} | not run | | |")
            continue
        sustained = row.get("open_loop_sustained")
        lines.append(f"| {name} | {row['req_per_s']:,.0f} | "
                     f"{'n/a' if sustained is None else f'{sustained:,.0f}'} | "
                     f"{row['cpu_s_per_1000']:.3f} |")
    lines += ["", "| driver | rate | p50 lag | p99 lag | max lag |", "|---|---:|---:|---:|---:|"]
    for index, rate in enumerate(LAG_RATES):
        for name, row in rows:
            if name.startswith("wrk"):
                continue
            lines.append(f"| {name} | {rate:,.0f} | {_lag(row, index)} |")
    for name, row in rows[:2]:
        if row is not None:
            steps = ", ".join(f"{s['rate']:,.0f}: p99 {s['lag_p99'] * 1000:.1f} ms, "
                              f"{s['answered_per_s']:,.0f}/s" for s in row["open_loop_steps"])
            lines += ["", f"{name} open-loop steps: {steps}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each phase")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--skip", default="", help="comma-separated: uvloop, wrk, jmeter")
    args = parser.parse_args(argv)
    numbers = measure(args.seconds, set(filter(None, args.skip.split(","))))
    print(render(numbers))
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
