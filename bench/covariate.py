"""How much of the per-pair variance of timing metrics the machine-speed calibration explains.

Reads the two results.json of one `harness perf` session whose experiment sets
`[rounds] calibration = true` (e.g. experiments/cuped-measure.toml) and prints, per timing metric
and per calibration measure (piece x clock x when), the share of the per-pair log-ratio variance
explained (R^2) and the CUPED estimate's theta. Used for docs/statistics.md ("Machine-speed
covariate").

    python bench/covariate.py OUT_DIR [OUT_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from harness.calibration import speed
from harness.results import load_results

METRICS = ("cpu_per_request", "latency_mean", "latency_p50")
WHEN = {"before": ("before",), "after": ("after",), "both": ("before", "after")}


def pairs(out_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-pair log ratios of the metrics and of every calibration measure."""
    sides = [load_results(out_dir / side / "results.json") for side in ("baseline", "candidate")]
    # the k-th round of each side is pair k; a pair with an invalid round is left out
    rounds = [sorted((r for r in s.rounds if r.instance == 1), key=lambda r: r.index)
              for s in sides]
    kept = [(b, c) for b, c in zip(rounds[0], rounds[1], strict=False) if b.valid and c.valid]
    base, cand = [b for b, _ in kept], [c for _, c in kept]
    metrics = {m: np.log([c.summary[m] / b.summary[m] for b, c in zip(base, cand, strict=True)])
               for m in METRICS}
    covariates = {}
    for piece in ("loop", "copy"):
        for clock in ("wall", "cpu"):
            for name, when in WHEN.items():
                values = [(speed(b.calibration, piece, clock, when),
                           speed(c.calibration, piece, clock, when))
                          for b, c in zip(base, cand, strict=True)]
                covariates[f"{piece}/{clock}/{name}"] = np.log([c / b for b, c in values])
    for clock in ("wall", "cpu"):  # both pieces together: the geometric mean of their times
        covariates[f"both/{clock}/both"] = (covariates[f"loop/{clock}/both"]
                                            + covariates[f"copy/{clock}/both"]) / 2
    return metrics, covariates


def main(argv: list[str]) -> None:
    for arg in argv:
        metrics, covariates = pairs(Path(arg))
        n = len(next(iter(metrics.values())))
        print(f"## {arg}: {n} pairs")
        print("| metric | sd per pair | " + " | ".join(covariates) + " |")
        print("|---" * (len(covariates) + 2) + "|")
        for m, d in metrics.items():
            cells = []
            for c in covariates.values():
                r = np.corrcoef(d, c)[0, 1]
                cells.append(f"{r * r:.2f}{'-' if r < 0 else ''}")
            print(f"| {m} | {np.std(d, ddof=1):.1%} | " + " | ".join(cells) + " |")
        sds = ", ".join(f"{k} {np.std(v, ddof=1):.1%}" for k, v in covariates.items())
        print(f"calibration sd per pair: {sds}")


if __name__ == "__main__":
    main(sys.argv[1:])
