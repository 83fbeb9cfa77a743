"""Reproduce the thesis' Table 6.7 on the reference peer: /channels at fixed rates, both DB modes.

Two seeded peers feed a third, measured peer (1,200 seeded channels) through background sync while
an open-loop client requests GET /channels at 1, 2, 5, 10, 15 and 20 req/s. Every (rate, mode) step
starts the measured peer fresh from a copy of the same seeded database, modes interleaved per rate.

    python bench/peer_table.py [--rates 1,2,5,10,15,20] [--seconds 20] [--out table.json]
    python bench/peer_table.py --driver jmeter   # as the thesis did: experiments/api-stress.jmx
    python bench/peer_table.py --driver both     # JMeter and our open-loop client, step by step

With JMeter every step runs experiments/api-stress.jmx non-GUI (through harness.jmeter, which
also starts Debian's 2.13 despite XStream's allow-list) with the rate, request count and thread
count as -J properties, and the JTL becomes the same samples our client records. JMeter's timer is
closed-loop: a thread waits for its response, so a slow peer also slows JMeter's sending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))
from harness.process import start_process, stop_sequence  # noqa: E402

READY_PREFIX = "peer ready on "


@dataclass(frozen=True)
class Sample:
    """One request: when it was due, how long it took, what came back."""

    intended: float
    latency: float
    status: int
    nbytes: int
    done: float


@dataclass(frozen=True)
class Row:
    """One line of Table 6.7."""

    rate: float
    mode: str
    requests: int
    ok: int
    avg_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    kb_per_s: float
    responses_per_s: float
    records_synced: int
    driver: str = "ours"


# -- the peers ---------------------------------------------------------------------------------

def peer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "subjects.peer", *args]


def seed(state_dir: Path, seed_value: int, channels: int, torrents: int) -> None:
    subprocess.run(peer_command("seed", "--state-dir", str(state_dir), "--seed", str(seed_value),
                                "--channels", str(channels), "--torrents", str(torrents)),
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def start_peer(state_dir: Path, mode: str, peers: list[str], sync_interval: float,
               timeout: float = 30.0) -> tuple[subprocess.Popen[str], str]:
    """Start a peer on a free port; returns the process and its base URL once it is ready."""
    proc = start_process(  # the harness' one lifecycle: own group, marker, stopped as a tree
        peer_command("serve", "--state-dir", str(state_dir), "--port", "0", "--db", mode,
                     "--peers", ",".join(peers), "--sync-interval", str(sync_interval)),
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        stop_peer(proc)
        raise RuntimeError(f"peer in {state_dir} not ready after {timeout} s") from None
    if not line.startswith(READY_PREFIX):
        stop_peer(proc)
        raise RuntimeError(f"peer in {state_dir} said {line!r} instead of the ready line")
    return proc, line[len(READY_PREFIX):].strip()


def stop_peer(proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    """Ask for a clean stop, and kill the peer (its whole tree) if it does not stop in time."""
    outcome = stop_sequence(proc, timeout=timeout)
    if outcome.warning:
        print(f"warning: peer: {outcome.warning}", file=sys.stderr)
    if proc.stdout:
        proc.stdout.close()


# -- the open-loop client ----------------------------------------------------------------------

async def drive(url: str, rate: float, count: int) -> list[Sample]:
    """Send `count` GETs at a fixed rate, each on schedule whether or not earlier ones returned."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        tasks = []
        for i in range(count):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            tasks.append(asyncio.create_task(_one(session, url, due - start, start)))
        return list(await asyncio.gather(*tasks))


async def _one(session: aiohttp.ClientSession, url: str, intended: float, start: float) -> Sample:
    loop = asyncio.get_running_loop()
    sent = loop.time()
    try:
        async with session.get(url) as response:
            body = await response.read()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        body, status = b"", 0
    done = loop.time()
    return Sample(intended, done - sent, status, len(body), done - start)


async def statistics_of(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url + "/statistics") as response:
        return await response.json()


# -- compute, then present -----------------------------------------------------------------------

def summarize(rate: float, mode: str, samples: list[Sample], records_synced: int,
              driver: str = "ours") -> Row:
    ok = [s for s in samples if s.status == 200]
    ms = [s.latency * 1000 for s in ok] or [float("nan")]
    # The run lasts from the first send to the last response (the thesis' responses per second).
    duration = max(s.done for s in samples) if samples else float("nan")
    return Row(rate=rate, mode=mode, requests=len(samples), ok=len(ok),
               avg_ms=statistics.fmean(ms), min_ms=min(ms), max_ms=max(ms),
               std_ms=statistics.stdev(ms) if len(ms) > 1 else 0.0,
               kb_per_s=sum(s.nbytes for s in ok) / 1000 / duration,
               responses_per_s=len(ok) / duration, records_synced=records_synced,
               driver=driver)


def render(rows: list[Row]) -> str:
    head = ("| req/s | driver | mode | avg (ms) | min | max | std dev | KB/s | responses/s |"
            " ok/sent | synced |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r.rate:g} | {r.driver} | {r.mode} | {r.avg_ms:.0f} | {r.min_ms:.0f} |"
                     f" {r.max_ms:.0f} |"
                     f" {r.std_ms:.1f} | {r.kb_per_s:.0f} | {r.responses_per_s:.1f} |"
                     f" {r.ok}/{r.requests} | {r.records_synced} |")
    return "\n".join(lines)


# -- the experiment --------------------------------------------------------------------------------

def drive_jmeter(url: str, rate: float, count: int, work: Path, threads: int) -> list[Sample]:
    """Send `count` GETs of /channels with JMeter and experiments/api-stress.jmx."""
    from harness.jmeter import JMeterRun, rampup, run_jmeter
    from harness.jtl import read_jtl

    host, port = url.removeprefix("http://").rsplit(":", 1)
    run = JMeterRun(work)
    props = {"host": host, "port": port, "throughput": f"{rate * 60:g}", "requests": str(count),
             "threads": str(threads), "rampup": str(rampup(threads, rate)),
             "timeout_ms": "120000"}
    run_jmeter(ROOT / "experiments" / "api-stress.jmx", props=props, run=run,
               timeout=count / rate + 180)
    jtl = sorted(read_jtl(run.jtl), key=lambda s: s.start)
    t0 = jtl[0].start if jtl else 0.0
    return [Sample(intended=s.start - t0, latency=s.elapsed, status=s.code, nbytes=s.nbytes,
                   done=s.start + s.elapsed - t0) for s in jtl]


def step(template: Path, work: Path, mode: str, rate: float, count: int, sources: list[str],
         warmup: float, driver: str = "ours", jmeter_threads: int = 20) -> Row:
    """One fresh measured peer, one rate, one mode, one driver."""
    state = work / f"measured-{mode}-{rate:g}-{driver}"
    state.mkdir()
    shutil.copy2(template / "peer.db", state / "peer.db")
    proc, url = start_peer(state, mode, sources, sync_interval=1.0)
    try:
        time.sleep(warmup)  # sync is running before the first request, as in the thesis
        if driver == "jmeter":
            samples = drive_jmeter(url, rate, count, work / f"jmeter-{mode}-{rate:g}",
                                   jmeter_threads)
        else:
            samples = asyncio.run(drive(url + "/channels", rate, count))
        synced = asyncio.run(statistics_of(url))["sync"]["records_synced"]
    finally:
        stop_peer(proc)
    shutil.rmtree(state, ignore_errors=True)
    return summarize(rate, mode, samples, synced, driver)


def run(rates: list[float], modes: list[str], seconds: float, channels: int, torrents: int,
        warmup: float, progress: bool = True, drivers: tuple[str, ...] = ("ours",),
        jmeter_threads: int = 20) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="peer-table-") as tmp:
        work = Path(tmp)
        # The sources hold twice as many torrents so that sync never runs dry within a step.
        seed(work / "source-1", 1, channels, 2 * torrents)
        seed(work / "source-2", 2, channels, 2 * torrents)
        seed(work / "template", 0, channels, torrents)
        procs = []
        try:
            for name in ("source-1", "source-2"):
                procs.append(start_peer(work / name, "worker", [], sync_interval=0))
            sources = [url.removeprefix("http://") for _, url in procs]
            for rate in rates:
                count = int(min(200, max(40, rate * seconds)))
                for mode in modes:  # interleaved: both modes see the same period of the machine
                    for driver in drivers:
                        row = step(work / "template", work, mode, rate, count, sources, warmup,
                                   driver, jmeter_threads)
                        rows.append(row)
                        if progress:
                            print(render([row]).splitlines()[-1], file=sys.stderr, flush=True)
        finally:
            for proc, _ in procs:
                stop_peer(proc)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,2,5,10,15,20")
    parser.add_argument("--modes", default="blocking,worker")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="requests per step = rate x seconds, clamped to 40..200")
    parser.add_argument("--channels", type=int, default=1200)
    parser.add_argument("--torrents", type=int, default=100_000)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--driver", choices=("ours", "jmeter", "both"), default="ours",
                        help="our open-loop client, JMeter with experiments/api-stress.jmx "
                        "(as the thesis measured), or both for every step")
    parser.add_argument("--jmeter-threads", type=int, default=20,
                        help="JMeter threads sharing the rate (closed loop: each waits for its "
                        "response)")
    args = parser.parse_args()
    drivers = ("ours", "jmeter") if args.driver == "both" else (args.driver,)
    rows = run([float(r) for r in args.rates.split(",")], args.modes.split(","), args.seconds,
               args.channels, args.torrents, args.warmup, drivers=drivers,
               jmeter_threads=args.jmeter_threads)
    print(render(rows))
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
