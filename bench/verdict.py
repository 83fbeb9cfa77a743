"""Our verdict against asv's and pyperf's rules, on the same real rounds of this machine.

    python bench/verdict.py [--triples 12] [--extra-work 30000] [--trials 200] [--pairs 8]
                            [--hog]

Measures `--triples` triples of rounds of the reference peer (experiments/api-quick.toml, fewer
torrents), each triple in a seeded random order: two rounds of the project as it is (A1, A2) and
one of a copy whose /channels handler does `--extra-work` more hash iterations (B, subjects/peer/
tuning.py; 30,000 iterations measured +35% CPU per request, 8,500 about +10%). The rounds of one
triple ran within a minute of each other, so (A1, A2) is a real A/A pair and (A1, B) a real A/B
pair, both sharing their period's conditions as perf's pairs do. `--hog` keeps a CPU hog busy on
one core for the whole run (a pure-Python loop in a child process, stopped at the end).

Then `--trials` sessions of `--pairs` pairs are drawn (without replacement within a session) and
judged by three rules on the same rounds:
  * ours: harness.compare.compare on the paired session (one look at alpha 0.01), with the
    default 10% min_change and with 5% (a regression needs the estimate to reach min_change
    and its lower bound half of it, so a true +10% at min_change 10% is found at most half the
    time: by design, that size is the instruction tier's to catch);
  * asv: two-sided Mann-Whitney p < 0.002 and a change of at least 10% (its documented rule);
  * pyperf compare_to: a two-sample t test at 95% confidence, no minimum change (its default);
on latency_mean and cpu_per_request: a detection in A/B, a false alarm in A/A when either metric
is flagged worse. Sessions overlap (they resample a few real rounds), so the rates describe this
machine in the period measured, with more spread than independent sessions would have.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from harness import stats  # noqa: E402
from harness.compare import Design, compare  # noqa: E402
from harness.experiment import load_experiment  # noqa: E402
from harness.results import Results, Round  # noqa: E402
from harness.runner import build_results, run_round  # noqa: E402

TIMING = ("latency_mean", "cpu_per_request")
RULES = ("ours", "ours, min_change 5%", "asv", "pyperf")
FIVE_PERCENT = {name: {"min_change": 0.05} for name in TIMING}


def slowed_copy(target: Path, extra_work: int) -> Path:
    """A copy of the project whose /channels handler does more CPU work per request."""
    for part in ("harness", "subjects", "experiments"):
        shutil.copytree(ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    tuning = target / "subjects" / "peer" / "tuning.py"
    tuning.write_text(tuning.read_text().replace("CHANNELS_EXTRA_WORK = 0",
                                                 f"CHANNELS_EXTRA_WORK = {extra_work}"))
    return target


def cpu_hog() -> None:  # pragma: no cover - runs in a child process
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


def measure(triples: int, extra_work: int, work: Path, seed: int) -> dict[str, list[Round]]:
    experiment = load_experiment(ROOT / "experiments" / "api-quick.toml",
                                 overrides={"torrents": "2000"})
    trees = {"A1": ROOT, "A2": ROOT, "B": slowed_copy(work / "slowed", extra_work)}
    rng = random.Random(seed)
    collected: dict[str, list[Round]] = {name: [] for name in trees}
    for number in range(triples):
        for name in rng.sample(sorted(trees), 3):
            index = sum(len(v) for v in collected.values())
            collected[name] += [r for r in run_round(
                experiment, index=index, side=name, step=None, work_dir=work / f"round-{index:03d}",
                project_root=trees[name], python=sys.executable) if r.instance == 1]
            print(f"triple {number + 1}/{triples}: {name}", file=sys.stderr, flush=True)
    return collected


def as_results(rounds: list[Round], label: str, template: Results, session: dict) -> Results:
    relabelled = tuple(dataclasses.replace(r, side=label, index=i) for i, r in enumerate(rounds))
    return dataclasses.replace(template, label=label, rounds=relabelled, session=session)


def asv_rule(base: list[float], cand: list[float]) -> bool:
    """Worse by asv's rule: two-sided Mann-Whitney p < 0.002 and at least 10% slower."""
    change = stats.median(cand) / stats.median(base) - 1.0
    return stats.mann_whitney(base, cand).p_value < 0.002 and change >= 0.10


def pyperf_rule(base: list[float], cand: list[float]) -> bool:
    """Worse by pyperf compare_to's default: a two-sample t test at 95% confidence."""
    n1, n2 = len(base), len(cand)
    m1, m2 = stats.mean(base), stats.mean(cand)
    pooled = ((n1 - 1) * stats.stdev(base) ** 2 + (n2 - 1) * stats.stdev(cand) ** 2) / (n1 + n2 - 2)
    if pooled == 0:
        return m2 > m1
    t = (m2 - m1) / math.sqrt(pooled * (1 / n1 + 1 / n2))
    return stats.t_two_sided_p(t, n1 + n2 - 2) < 0.05 and m2 > m1


def rates(collected: dict[str, list[Round]], trials: int, pairs: int, seed: int) -> dict:
    experiment = load_experiment(ROOT / "experiments" / "api-quick.toml")
    template = build_results(experiment, [], label="x", project_root=ROOT, python=sys.executable)
    rng = random.Random(seed)
    count = min(len(v) for v in collected.values())
    flagged = {(rule, case): 0 for rule in RULES for case in ("AA", "AB")}
    passed_aa = 0
    for trial in range(trials):
        chosen = rng.sample(range(count), min(pairs, count))
        session = {"mode": "interleaved", "seed": trial, "pairs": len(chosen),
                   "max_error_rate": experiment.workload.max_error_rate}
        base = [collected["A1"][i] for i in chosen]
        for case, other in (("AA", "A2"), ("AB", "B")):
            cand = [collected[other][i] for i in chosen]
            verdict = compare(as_results(base, "baseline", template, session),
                              as_results(cand, "candidate", template, session),
                              design=Design(level=0.01), seed=trial)
            flagged["ours", case] += any(m.verdict == "regression" for m in verdict.metrics
                                         if m.metric in TIMING)
            five = compare(as_results(base, "baseline", template, session),
                           as_results(cand, "candidate", template, session),
                           design=Design(level=0.01), seed=trial, policies=FIVE_PERCENT)
            flagged["ours, min_change 5%", case] += any(
                m.verdict == "regression" for m in five.metrics if m.metric in TIMING)
            passed_aa += case == "AA" and verdict.overall == "pass"
            values = {name: ([r.summary[name] for r in base], [r.summary[name] for r in cand])
                      for name in TIMING}
            flagged["asv", case] += any(asv_rule(*values[name]) for name in TIMING)
            flagged["pyperf", case] += any(pyperf_rule(*values[name]) for name in TIMING)
    cpu = {name: stats.median([r.summary["cpu_per_request"] for r in rounds])
           for name, rounds in collected.items()}
    return {"trials": trials, "pairs": pairs, "flagged": flagged, "passed_aa": passed_aa,
            "cpu_ms": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", type=int, default=12,
                        help="triples of rounds (A1, A2, B); more than --pairs")
    parser.add_argument("--extra-work", type=int, default=30_000,
                        help="hash iterations added per /channels request (0.3 us each)")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hog", action="store_true", help="a CPU hog on one core throughout")
    args = parser.parse_args()
    started = time.monotonic()
    hog = multiprocessing.Process(target=cpu_hog, daemon=True) if args.hog else None
    if hog:
        hog.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
            collected = measure(args.triples, args.extra_work, Path(tmp), args.seed)
    finally:
        if hog:
            hog.terminate()
            hog.join()
    out = rates(collected, args.trials, args.pairs, args.seed)
    cpu = out["cpu_ms"]
    print(f"CPU per request (median of rounds): A1 {cpu['A1'] * 1000:.2f} ms, "
          f"A2 {cpu['A2'] * 1000:.2f} ms, B {cpu['B'] * 1000:.2f} ms "
          f"({cpu['B'] / cpu['A1'] - 1:+.1%})")
    print(f"{out['trials']} sessions of {out['pairs']} pairs, latency_mean or cpu_per_request "
          f"flagged worse:")
    print("| rule | A/A false alarms | A/B (+extra work) detected |")
    print("|---|---|---|")
    for rule in RULES:
        print(f"| {rule} | {out['flagged'][rule, 'AA'] / out['trials']:.1%} | "
              f"{out['flagged'][rule, 'AB'] / out['trials']:.1%} |")
    print(f"our A/A overall pass: {out['passed_aa'] / out['trials']:.1%}")
    print(f"measured in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
