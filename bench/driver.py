"""Benchmark of the load driver: its ceiling on one core beside wrk's, and its schedule accuracy.

    python bench/driver.py [--seconds 2] [--json FILE]

One run, one target: a minimal asyncio HTTP/1.1 responder in its own process (pinned to the last
CPU on Linux) that answers every request with a 2-byte body. The measuring side is pinned to
CPU 0. It reports

* closed-loop ceilings on one core: wrk, the harness' raw-stream client, the aiohttp client
  (the measurement behind the choice of transport in harness/driver.py);
* the highest open-loop rate the harness driver sustains (>= 95% of the rate answered, p99
  schedule lag <= 10 ms, a fifth of the default Workload.max_lag);
* p50/p99/max schedule lag of the harness driver at 100, 1,000 and 3,000 req/s.

Every phase is bounded by --seconds (5 s at 100 req/s, to have 500 sends). Results go to stdout
as Markdown tables (docs/performance.md, "Load driver").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import driver  # noqa: E402
from harness.experiment import Endpoint  # noqa: E402
from harness.process import start_process, stop_process_tree  # noqa: E402
from harness.subject import free_ports, http_ok  # noqa: E402

# The target: one asyncio Protocol answering each request head with a fixed response. Requests
# have no body (GET), so each b"\r\n\r\n" ends one request, pipelined or not.
TARGET = r"""
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.pending = transport, b""
    def data_received(self, data):
        data = self.pending + data
        count = data.count(b"\r\n\r\n")
        self.pending = data[data.rfind(b"\r\n\r\n") + 4:] if count else data
        if count:
            self.transport.write(RESPONSE * count)
async def serve(port):
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(serve(int(sys.argv[1])))
"""

ENDPOINT = (Endpoint("/", "root"),)
SUSTAINED_LAG = 0.010  # p99 schedule lag up to which a rate counts as sustained
STEPS = (1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 14000, 16000, 20000, 24000)
LAG_RATES = (100.0, 1000.0, 3000.0)


def pin(pid: int, cpu: int) -> bool:
    """Pin a process to one CPU (Linux only); False where the platform cannot."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(pid, {cpu})
    return True


def start_target() -> tuple[subprocess.Popen, int]:
    port = free_ports(1)[0]
    proc = start_process([sys.executable, "-c", TARGET, str(port)])
    pin(proc.pid, (os.cpu_count() or 1) - 1)
    deadline = time.monotonic() + 10
    while not http_ok(f"http://127.0.0.1:{port}/"):
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_process_tree(proc, timeout=2)
            raise RuntimeError("the benchmark target did not start")
        time.sleep(0.05)
    return proc, port


def wrk_rate(port: int, seconds: float) -> float | None:
    """Requests/s wrk reaches with one thread on CPU 0 (None when wrk is not installed)."""
    if shutil.which("wrk") is None:
        return None
    argv = ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s", f"http://127.0.0.1:{port}/"]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", "0", *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    match = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
    return float(match.group(1)) if match else None


async def _closed_streams(port: int, seconds: float, workers: int = 32) -> int:
    """Closed loop with the driver's own connection class: how fast it can go at all."""
    request = driver.encode_request(ENDPOINT[0], "127.0.0.1", port)
    pool = driver._Pool("127.0.0.1", port, limit=workers)  # pylint: disable=protected-access
    await pool.fill(workers)
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


async def _closed_aiohttp(port: int, seconds: float, workers: int = 32) -> int:
    import aiohttp

    end = time.monotonic() + seconds
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=workers)) as session:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < end:
                async with session.get(f"http://127.0.0.1:{port}/") as response:
                    await response.read()
                done += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return done


def closed_loop(port: int, seconds: float) -> dict[str, float]:
    return {
        "raw_streams": asyncio.run(_closed_streams(port, seconds)) / seconds,
        "aiohttp": asyncio.run(_closed_aiohttp(port, seconds)) / seconds,
    }


def open_loop(port: int, rate: float, seconds: float) -> dict[str, float]:
    result = asyncio.run(driver.drive(ENDPOINT, port=port, rate=rate,
                                      requests=max(50, int(rate * seconds)),
                                      max_lag=SUSTAINED_LAG, expected_latency=0.002))
    ok = sum(1 for e in result.log.error if e is None)
    return {"rate": rate, "answered_per_s": ok / result.duration, **result.lag}


def sustained(port: int, seconds: float, ceiling: float) -> tuple[float, list[dict[str, float]]]:
    """The highest rate of STEPS (up to the closed-loop ceiling) kept on schedule."""
    best, tried = 0.0, []
    for rate in (float(r) for r in STEPS if r <= ceiling * 1.1):
        row = open_loop(port, rate, seconds)
        tried.append(row)
        if row["answered_per_s"] < 0.95 * rate or row["lag_p99"] > SUSTAINED_LAG:
            break
        best = rate
    return best, tried


def measure(seconds: float) -> dict:
    target, port = start_target()
    pinned = pin(os.getpid(), 0)
    try:
        numbers: dict = {"cpus": os.cpu_count(), "pinned": pinned}
        numbers["wrk"] = wrk_rate(port, seconds)
        numbers["closed_loop"] = closed_loop(port, seconds)
        best, tried = sustained(port, seconds, numbers["closed_loop"]["raw_streams"])
        numbers["sustained_open_loop"], numbers["open_loop_steps"] = best, tried
        numbers["lag"] = [open_loop(port, r, 5.0 if r <= 100 else seconds) for r in LAG_RATES]
        return numbers
    finally:
        stop_process_tree(target, timeout=2)


def render(numbers: dict) -> str:
    ms = 1000.0
    wrk, closed = numbers["wrk"], numbers["closed_loop"]
    lines = [
        f"CPUs: {numbers['cpus']}, driver pinned to CPU 0: {numbers['pinned']}",
        "",
        "| driver (one core, keep-alive) | mode | req/s |",
        "|---|---|---|",
        f"| wrk -t1 -c32 | closed loop | {'not installed' if wrk is None else f'{wrk:,.0f}'} |",
        f"| harness raw asyncio streams | closed loop, 32 connections | "
        f"{closed['raw_streams']:,.0f} |",
        f"| aiohttp client | closed loop, 32 connections | {closed['aiohttp']:,.0f} |",
        f"| harness driver | open loop, on schedule | {numbers['sustained_open_loop']:,.0f} |",
        "",
        "| open loop rate (req/s) | answered/s | schedule lag p50 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for row in [*numbers["lag"], *numbers["open_loop_steps"]]:
        lines.append(
            f"| {row['rate']:,.0f} | {row['answered_per_s']:,.0f} | {row['lag_p50'] * ms:.2f} ms "
            f"| {row['lag_p99'] * ms:.2f} ms | {row['lag_max'] * ms:.2f} ms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each phase")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    numbers = measure(args.seconds)
    print(render(numbers))
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
