"""Run one of the harness' benchmarks by name: `python bench/run.py NAME [ARGS...]`.

Names: driver (load driver vs wrk), probes (probe overhead), instructions (instruction tier
detection), peer-table (thesis Table 6.7 on the reference peer), verdict (detection power and
false alarms of the timing verdict on resampled rounds), sessions (full `harness perf` sessions
per case, under a CPU hog). Results and commands are recorded in docs/performance.md.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

BENCHMARKS = {
    "driver": "driver.py",
    "probes": "probes.py",
    "instructions": "instructions.py",
    "peer-table": "peer_table.py",
    "verdict": "verdict.py",
    "sessions": "sessions.py",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(__doc__, file=sys.stderr)
        return 1
    script = Path(__file__).resolve().parent / BENCHMARKS[argv[0]]
    sys.argv = [str(script), *argv[1:]]
    runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
