"""Screenshots of report.html for the README, taken with headless Chromium.

    python docs/screenshots/make.py REPORT_DIR [OUT.png] [--width 1280] [--height 2000]

REPORT_DIR is an output folder of `harness perf` or `harness compare` (it holds report.html,
report.css and the plots). Without OUT the picture goes to docs/report.png. The README's demo:

    tox -e perf -- --baseline-set db=blocking --set db=worker
    python docs/screenshots/make.py perf-out

Chromium runs with a fresh profile in a temporary folder, no network beyond the file itself and
no GPU, and is given a time limit, so no process outlives the script.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium found (looked for " + ", ".join(BROWSERS) + "); install chromium")


def screenshot(report: Path, out: Path, *, width: int, height: int) -> Path:
    """report.html rendered at width x height pixels into `out` (a PNG)."""
    html = report / "report.html" if report.is_dir() else report
    if not html.is_file():
        sys.exit(f"{html}: no report.html; pass the --out folder of harness perf or compare")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshot-profile-") as profile:
        command = [
            browser(), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            f"--user-data-dir={profile}", "--hide-scrollbars",
            f"--window-size={width},{height}", f"--screenshot={out.resolve()}",
            html.resolve().as_uri(),
        ]
        subprocess.run(command, check=True, timeout=120, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if not out.is_file():
        sys.exit(f"Chromium wrote no screenshot to {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="folder with report.html (or the file)")
    parser.add_argument("out", type=Path, nargs="?", default=ROOT / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args()
    print(screenshot(args.report, args.out, width=args.width, height=args.height))


if __name__ == "__main__":
    main()
