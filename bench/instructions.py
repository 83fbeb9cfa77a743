"""Detection power of the instruction tier: +1% CPU per /channels request is flagged, none is not.

Copies the reference subject (`subjects/`) into three trees: the baseline as committed, an
identical copy (the no-change candidate) and one with `tuning.CHANNELS_EXTRA_WORK` raised so that a
/channels request costs about 1% more CPU natively (calibrated here, from native CPU time). Each
tree is measured by the instruction tier `--rounds` times (one round = one N-request run and one
0-request run under valgrind); every baseline round is compared with every candidate round, and a
comparison is flagged when the relative change of instructions per request reaches `--threshold`.

    python bench/instructions.py [--subject-from DIR] [--rounds 3] [--requests 10] [--out FILE]

Prints a JSON summary (and writes it to --out): per-round values, the spread, the flag counts and
the wall time of one tier run.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# pylint: disable=wrong-import-position
from harness import instructions  # noqa: E402
from harness.experiment import (  # noqa: E402
    Endpoint,
    Experiment,
    InstructionTier,
    Probes,
    Readiness,
    Rounds,
    SetupCommand,
    Subject,
    Workload,
)
from harness.process import start_process, stop_process_tree  # noqa: E402


def experiment(tool: str, requests: int, channels: int) -> Experiment:
    """The reference peer, one instance, background sync off, /channels only."""
    subject = Subject(
        command=("{python}", "-m", "subjects.peer", "serve", "--state-dir", "{state_dir}",
                 "--port", "{port}", "--db", "{db}", "--sync-interval", "0"),
        setup=(SetupCommand(command=("{python}", "-m", "subjects.peer", "seed", "--state-dir",
                                     "{state_dir}", "--channels", str(channels))),),
        ready=Readiness(http="/health"),
    )
    workload = Workload(endpoints=(Endpoint(path="/channels", name="channels"),), rates=(1.0,))
    return Experiment(name="bench-instructions", path="bench/instructions.py", sha256="",
                      description="", subject=subject, workload=workload, probes=Probes(),
                      rounds=Rounds(), metrics={}, variables={"db": "blocking"},
                      instructions=InstructionTier(enabled=True, tool=tool, requests=requests))


def copy_subject(source: Path, dest: Path, extra_work: int) -> Path:
    """Copy the committed `subjects/` of a git checkout, with CHANNELS_EXTRA_WORK set."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(source), "archive", "HEAD", "subjects"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    tuning = dest / "subjects" / "peer" / "tuning.py"
    text, count = re.subn(r"^CHANNELS_EXTRA_WORK = \d+", f"CHANNELS_EXTRA_WORK = {extra_work}",
                          tuning.read_text(), flags=re.MULTILINE)
    if count != 1:
        raise SystemExit(f"{tuning}: no `CHANNELS_EXTRA_WORK = N` line to change")
    tuning.write_text(text)
    return dest


def calibrate(tree: Path, channels: int, requests: int = 200) -> dict:
    """Native CPU seconds per /channels request and per extra-work iteration, and so the
    iterations that add 1%."""
    state = Path(tempfile.mkdtemp(prefix="bench-instr-state-"))
    try:
        subprocess.run([sys.executable, "-m", "subjects.peer", "seed", "--state-dir", str(state),
                        "--channels", str(channels)], cwd=tree, check=True, capture_output=True)
        port = _free_port()
        server = start_process([sys.executable, "-m", "subjects.peer", "serve", "--state-dir",
                                str(state), "--port", str(port), "--db", "blocking",
                                "--sync-interval", "0"], cwd=tree, stdout=subprocess.PIPE,
                               text=True)
        try:
            assert server.stdout is not None
            server.stdout.readline()  # "peer ready on ..."
            proc = psutil.Process(server.pid)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for _ in range(20):  # warm-up
                _get(conn, "/channels")
            before = sum(proc.cpu_times()[:2])
            for _ in range(requests):
                _get(conn, "/channels")
            cpu = (sum(proc.cpu_times()[:2]) - before) / requests
        finally:
            stop_process_tree(server, timeout=30)
            if server.stdout is not None:
                server.stdout.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    probe = subprocess.run(
        [sys.executable, "-c", "import time; from subjects.peer import tuning; "
         "t = time.process_time(); tuning.extra_work(200000); "
         "print((time.process_time() - t) / 200000)"],
        cwd=tree, check=True, capture_output=True, text=True)
    per_iteration = float(probe.stdout)
    return {"cpu_per_request": cpu, "cpu_per_iteration": per_iteration,
            "iterations_for_1pct": max(1, round(0.01 * cpu / per_iteration))}


def _get(conn: http.client.HTTPConnection, path: str) -> None:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(tree: Path, exp: Experiment, rounds: int, work: Path) -> list[dict]:
    results = []
    for index in range(rounds):
        results.append(instructions.run_instruction_tier(
            exp, work_dir=work / f"round-{index}", project_root=tree, python=sys.executable))
    return results


def comparisons(baseline: list[dict], candidate: list[dict], threshold: float) -> dict:
    """Every baseline round against every candidate round (all pairs), flagged at `threshold`."""
    changes = [instructions.relative_changes(b, c, min_change=threshold)[0]
               for b, c in itertools.product(baseline, candidate)]
    return {"pairs": len(changes), "flagged": sum(row["flagged"] for row in changes),
            "changes": sorted({round(row["change"], 6) for row in changes})}


def spread(results: list[dict]) -> dict:
    values = [r["endpoints"]["channels"]["per_request"] for r in results]
    return {"per_request": values, "min": min(values), "max": max(values),
            "relative_spread": (max(values) - min(values)) / min(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject-from", type=Path, default=ROOT,
                        help="git checkout whose committed subjects/ is measured")
    parser.add_argument("--rounds", type=int, default=3, help="tier runs per tree")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--channels", type=int, default=1200)
    parser.add_argument("--tool", choices=("cachegrind", "callgrind"), default="cachegrind")
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--extra-work", type=int, default=None,
                        help="CHANNELS_EXTRA_WORK of the slower candidate "
                             "(default: calibrated to 1%% native CPU)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    try:
        # Equal-length paths for every tree and run: paths end up in the subject's memory (module
        # file names), and a different length alone moves the counts by a few hundredths of 1%.
        base = copy_subject(args.subject_from, work / "tree-a", 0)
        same = copy_subject(args.subject_from, work / "tree-b", 0)
        calibration = calibrate(base, args.channels)
        extra = args.extra_work or calibration["iterations_for_1pct"]
        slow = copy_subject(args.subject_from, work / "tree-c", extra)
        exp = experiment(args.tool, args.requests, args.channels)
        started = time.monotonic()
        runs = {name: measure(tree, exp, args.rounds, tree.with_name(f"runs-{tree.name[-1]}"))
                for name, tree in (("baseline", base), ("same", same), ("slow", slow))}
        elapsed = time.monotonic() - started
        summary = {
            "command": " ".join(sys.argv), "tool": args.tool, "requests": args.requests,
            "channels": args.channels, "threshold": args.threshold, "extra_work": extra,
            "calibration": calibration,
            "tier_wall_time": elapsed / (3 * args.rounds),
            "spread": {name: spread(results) for name, results in runs.items()},
            "no_change": comparisons(runs["baseline"], runs["same"], args.threshold),
            "one_percent": comparisons(runs["baseline"], runs["slow"], args.threshold),
            "top_functions": instructions.function_changes(runs["baseline"][0], runs["slow"][0],
                                                           top=5),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(summary, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
