"""Probe overhead: subject throughput with and without each probe, interleaved in one run.

    python bench/probes.py [--rounds 11] [--requests 5000] [--concurrency 8]
                           [--subject auto|peer|app]

Each round starts the subject once per configuration (none, sqlite, loop_lag, both) in a shuffled
order, warms it up, then sends a fixed number of requests closed-loop and records responses per
second. Prints a Markdown table for docs/performance.md ("## Probe overhead").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from harness.experiment import Probes  # noqa: E402
from harness.probes import probe_environment  # noqa: E402
from tests.probes_support import APP, free_port, running  # noqa: E402

CONFIGS = {
    "none": Probes(),
    "sqlite": Probes(sqlite=True),
    "loop_lag": Probes(loop_lag=True),
    "sqlite+loop_lag": Probes(sqlite=True, loop_lag=True),
}


def _subject(kind: str, work: Path) -> tuple[list[str], list[str]]:
    """The command (with {port}) and the request paths of the subject to measure."""
    has_peer = importlib.util.find_spec("subjects.peer") is not None
    if kind == "peer" or (kind == "auto" and has_peer):
        state = work / "state"
        subprocess.run([sys.executable, "-m", "subjects.peer", "seed", "--state-dir", str(state),
                        "--channels", "200", "--torrents", "10000"], cwd=ROOT, check=True,
                       capture_output=True)
        command = [sys.executable, "-m", "subjects.peer", "serve", "--state-dir", str(state),
                   "--port", "{port}", "--db", "worker", "--sync-interval", "0"]
        paths = [f"/channels/{1 + i % 100}/torrents?page=1&size=20" for i in range(200)]
        return command, paths
    command = [sys.executable, str(APP), "--port", "{port}", "--db", str(work / "app.db")]
    paths = [f"/items/{1 + i % 200}" if i % 2 else "/items?limit=20" for i in range(200)]
    return command, paths


async def _drive(base: str, paths: list[str], requests: int, concurrency: int) -> float:
    """Closed loop: `concurrency` workers send `requests` in all; returns responses per second."""
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in counter:
                async with session.get(base + paths[i % len(paths)]) as response:
                    await response.read()
                    if response.status >= 400:
                        raise RuntimeError(f"{paths[i % len(paths)]}: HTTP {response.status}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure(name: str, command: list[str], paths: list[str], work: Path, args):
    """Responses per second and the subject's CPU microseconds per request, for one config."""
    port = free_port()
    env, _ = probe_environment(CONFIGS[name], data_dir=work / f"probes-{name}",
                               base_env=os.environ.copy(), is_python=True)
    cmd = [part.replace("{port}", str(port)) for part in command]
    base = f"http://127.0.0.1:{port}"
    with running(cmd, env, ROOT, base + "/health", work / f"{name}.log") as proc:
        subject = psutil.Process(proc.pid)
        asyncio.run(_drive(base, paths, args.warmup, args.concurrency))
        before = _cpu(subject)
        rate = asyncio.run(_drive(base, paths, args.requests, args.concurrency))
        return rate, (_cpu(subject) - before) / args.requests * 1e6


def per_call_cost(repeats: int = 7, calls: int = 20000) -> tuple[float, float]:
    """CPU cost of one execute + fetchone on an in-memory database, without and with the probe,
    interleaved; returns the two medians in microseconds."""
    import sqlite3

    from harness.probes import sqlite as probe

    def run(connect) -> float:
        db = connect(":memory:")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(100)])
        start = time.process_time()
        for i in range(calls):
            db.execute("SELECT v FROM t WHERE id = ?", (i % 100,)).fetchone()
        return (time.process_time() - start) / calls * 1e6

    plain, probed = [], []
    original = sqlite3.connect
    for _ in range(repeats):
        plain.append(run(original))
        probe.install()
        try:
            probed.append(run(sqlite3.connect))
        finally:
            probe.uninstall()
    return statistics.median(plain), statistics.median(probed)


def _paired(values: list[float], base: list[float]) -> str:
    """Median and range of the per-round change against the unprobed run of the same round:
    pairing within a round cancels most of the machine's drift between rounds."""
    changes = sorted(v / b - 1.0 for v, b in zip(values, base, strict=True))
    return f"{statistics.median(changes):+.1%} ({changes[0]:+.0%} to {changes[-1]:+.0%})"


def table(results: dict[str, list[tuple[float, float]]]) -> str:
    """Medians over rounds, and per-round paired changes relative to the unprobed subject."""
    rates0 = [r for r, _ in results["none"]]
    cpus0 = [c for _, c in results["none"]]
    lines = ["| probes | responses/s (median) | change, paired (range) | CPU us/request (median) "
             "| change, paired (range) |", "|---|---:|---:|---:|---:|"]
    for name, values in results.items():
        rates, cpus = [r for r, _ in values], [c for _, c in values]
        rate_change = "" if name == "none" else _paired(rates, rates0)
        cpu_change = "" if name == "none" else _paired(cpus, cpus0)
        lines.append(f"| {name} | {statistics.median(rates):.0f} | {rate_change} "
                     f"| {statistics.median(cpus):.0f} | {cpu_change} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--subject", choices=("auto", "peer", "app"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        command, paths = _subject(args.subject, work)
        for round_ in range(args.rounds):
            order = list(CONFIGS)
            rng.shuffle(order)
            for name in order:
                results[name].append(measure(name, command, paths, work, args))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(f"subject: {' '.join(Path(c).name if '/' in c else c for c in command)}")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; {args.rounds} rounds x {args.requests} requests, "
          f"concurrency {args.concurrency}\n")
    print(table(results))
    plain, probed = per_call_cost()
    print(f"\nexecute + fetchone, in-process CPU time: {plain:.1f} us plain, {probed:.1f} us "
          f"probed (+{probed - plain:.1f} us per statement with its fetch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
