"""Screenshots of report.html for the README, taken with headless Chromium.

    python docs/screenshots/make.py --demo [OUT.png]         # run the README's demo, then shoot
    python docs/screenshots/make.py REPORT_DIR [OUT.png]     # shoot an existing report

--demo runs the README's demo, `harness perf --baseline-set db=blocking --set db=worker` (what
`tox -e perf -- --baseline-set db=blocking --set db=worker` runs; about 5 minutes on 2 cores), into
a temporary folder. REPORT_DIR is an output folder of `harness perf` or `harness compare` (it
holds report.html, report.css and the plots). Without OUT the picture goes to docs/report.png.
--width and --height set the window (default 1280 x 1500: the verdict, the change table and the
first plot).

Chromium runs with a fresh profile in a temporary folder, no network beyond the file itself and
no GPU, in its own process group with a time limit, so no process outlives the script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
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
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            process.wait(timeout=120)
        finally:
            if process.poll() is None and hasattr(os, "killpg"):
                os.killpg(process.pid, signal.SIGKILL)
            elif process.poll() is None:
                process.kill()
            process.wait()
    if not out.is_file():
        sys.exit(f"Chromium wrote no screenshot to {out}")
    return out


DEMO = ["perf", "--baseline-set", "db=blocking", "--set", "db=worker"]


def demo(out_dir: Path) -> Path:
    """Run the README's demo into out_dir; its report folder (exit 0 and 2 are both verdicts)."""
    done = subprocess.run([sys.executable, "-m", "harness", *DEMO, "--out", str(out_dir)],
                          cwd=ROOT, check=False, timeout=1800)
    if done.returncode not in (0, 2):
        sys.exit(f"the demo failed (exit {done.returncode}); see its output above")
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, nargs="?", help="folder with report.html")
    parser.add_argument("out", type=Path, nargs="?", default=ROOT / "docs" / "report.png")
    parser.add_argument("--demo", action="store_true", help="run the README's demo first")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args()
    if args.demo:
        if args.report is not None and args.report.suffix == ".png":
            args.out = args.report
        with tempfile.TemporaryDirectory(prefix="perf-demo-") as folder:
            report = demo(Path(folder))
            print(screenshot(report, args.out, width=args.width, height=args.height))
        return
    if args.report is None:
        parser.error("pass a report folder, or --demo to run the README's demo")
    print(screenshot(args.report, args.out, width=args.width, height=args.height))


if __name__ == "__main__":
    main()
