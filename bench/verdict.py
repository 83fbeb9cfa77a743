"""Detection power and false-alarm rate of the timing verdict, on real rounds of this machine.

    python bench/verdict.py [--rounds 12] [--extra-work 30000] [--trials 200] [--per-side 6]

Measures `--rounds` rounds of the reference peer (experiments/api-quick.toml, fewer torrents)
for each of two trees, interleaved in pairs: the project as it is, and a copy whose /channels
handler does `--extra-work` more hash iterations (subjects/peer/tuning.py). Then draws `--trials`
comparisons of `--per-side` rounds per side from them with `harness.compare.compare`:
  * A/A: two disjoint sets of the unchanged tree's rounds; a regression there is a false alarm;
  * A/B: unchanged rounds against slowed rounds; a regression of latency_mean or cpu_per_request
    there is a detection.
The rounds are real (this machine's noise, fresh starts), the resampling only reuses them, so the
rates describe this machine in the period the rounds were taken.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from harness.compare import compare  # noqa: E402
from harness.experiment import load_experiment  # noqa: E402
from harness.results import Results, Round  # noqa: E402
from harness.runner import build_results, run_round  # noqa: E402

TIMING = ("latency_mean", "cpu_per_request")


def slowed_copy(target: Path, extra_work: int) -> Path:
    """A copy of the project whose /channels handler does more CPU work per request."""
    for part in ("harness", "subjects", "experiments"):
        shutil.copytree(ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    tuning = target / "subjects" / "peer" / "tuning.py"
    tuning.write_text(tuning.read_text().replace("CHANNELS_EXTRA_WORK = 0",
                                                 f"CHANNELS_EXTRA_WORK = {extra_work}"))
    return target


def measure(rounds: int, extra_work: int, work: Path, seed: int) -> dict[str, list[Round]]:
    experiment = load_experiment(ROOT / "experiments" / "api-quick.toml",
                                 overrides={"torrents": "2000"})
    trees = {"unchanged": ROOT, "slowed": slowed_copy(work / "slowed", extra_work)}
    rng = random.Random(seed)
    collected: dict[str, list[Round]] = {name: [] for name in trees}
    for number in range(rounds):
        for name in rng.sample(sorted(trees), 2):
            index = sum(len(v) for v in collected.values())
            collected[name] += run_round(experiment, index=index, side=name, step=None,
                                         work_dir=work / f"round-{index:03d}",
                                         project_root=trees[name], python=sys.executable)
            print(f"round {number + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
    return collected


def as_results(rounds: list[Round], label: str, template: Results) -> Results:
    relabelled = tuple(dataclasses.replace(r, side=label) for r in rounds)
    return dataclasses.replace(template, label=label, rounds=relabelled)


def rates(collected: dict[str, list[Round]], trials: int, per_side: int, seed: int) -> dict:
    experiment = load_experiment(ROOT / "experiments" / "api-quick.toml")
    template = build_results(experiment, [], label="x", project_root=ROOT, python=sys.executable)
    rng = random.Random(seed)
    unchanged, slowed = collected["unchanged"], collected["slowed"]
    false_alarms = detections = inconclusive_ab = 0
    for trial in range(trials):
        a = rng.sample(unchanged, min(2 * per_side, len(unchanged)))
        aa = compare(as_results(a[:per_side], "baseline", template),
                     as_results(a[per_side:2 * per_side], "candidate", template), seed=trial)
        false_alarms += any(m.verdict == "regression" for m in aa.metrics
                            if m.metric in TIMING)
        ab = compare(as_results(rng.sample(unchanged, per_side), "baseline", template),
                     as_results(rng.sample(slowed, per_side), "candidate", template), seed=trial)
        flagged = [m for m in ab.metrics if m.metric in TIMING]
        detections += any(m.verdict == "regression" for m in flagged)
        inconclusive_ab += all(m.verdict == "inconclusive" for m in flagged)
    base = [r.summary["cpu_per_request"] for r in unchanged]
    slow = [r.summary["cpu_per_request"] for r in slowed]
    return {
        "trials": trials, "per_side": per_side,
        "false_alarm_rate": false_alarms / trials, "detection_rate": detections / trials,
        "ab_all_inconclusive_rate": inconclusive_ab / trials,
        "cpu_per_request_ms": (1000 * sorted(base)[len(base) // 2],
                               1000 * sorted(slow)[len(slow) // 2]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="rounds measured per tree")
    parser.add_argument("--extra-work", type=int, default=30_000,
                        help="hash iterations added per /channels request (0.3 us each)")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--per-side", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-verdict-") as tmp:
        collected = measure(args.rounds, args.extra_work, Path(tmp), args.seed)
    out = rates(collected, args.trials, args.per_side, args.seed)
    base_ms, slow_ms = out["cpu_per_request_ms"]
    print(f"CPU per request (median of rounds): unchanged {base_ms:.2f} ms, "
          f"slowed {slow_ms:.2f} ms ({slow_ms / base_ms - 1:+.1%})")
    print(f"{args.trials} comparisons of {args.per_side} + {args.per_side} rounds: "
          f"false alarms (A/A) {out['false_alarm_rate']:.1%}, "
          f"detections (A/B) {out['detection_rate']:.1%}, "
          f"A/B all inconclusive {out['ab_all_inconclusive_rate']:.1%}")
    print(f"measured in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
