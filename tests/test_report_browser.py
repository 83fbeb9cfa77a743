"""report.html in headless Chromium behind Jenkins' default Content-Security-Policy.

The report directory is served from 127.0.0.1 with the header Jenkins sends for archived files;
Chromium's console log (--enable-logging=stderr) reports every CSP violation, and any console
message fails the test. A deliberately bad page checks that violations are in fact caught.
The screenshot goes to tests/artifacts/ (ignored by git, archived by CI).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness import report
from tests import comparisons

JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.needs("chromium"),
]


class _CspHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder with Jenkins' CSP header and remembers which files were fetched."""

    fetched: list[tuple[str, int]]

    def end_headers(self):
        self.send_header("Content-Security-Policy", JENKINS_CSP)
        super().end_headers()

    def send_response(self, code, message=None):
        self.fetched.append((self.path, code))
        super().send_response(code, message)

    def log_message(self, format, *args):  # noqa: A002 - the base class' signature
        pass


@contextmanager
def _serve(directory: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    fetched: list[tuple[str, int]] = []
    handler = type("Handler", (_CspHandler,), {"fetched": fetched})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fetched
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _open(url: str, screenshot: Path, profile: Path) -> list[str]:
    """Load `url` in headless Chromium, save a screenshot, return its console messages."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        "--window-size=1280,3000", "--hide-scrollbars", f"--screenshot={screenshot}", url,
    ]
    posix = sys.platform != "win32"
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=posix)
    try:
        _, stderr = proc.communicate(timeout=90)
    finally:
        if posix:  # Chromium's helper processes share its session: end them all
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_report_shows_under_jenkins_csp_without_violations(tmp_path):
    out = tmp_path / "report"
    report.write_reports(comparisons.comparison(), out_dir=out)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    with _serve(out) as (base, fetched):
        console = _open(f"{base}/report.html", screenshot, tmp_path / "profile")
    assert console == [], "the browser console reported:\n" + "\n".join(console)
    assert screenshot.exists() and screenshot.stat().st_size > 0
    loaded = {path.lstrip("/") for path, code in fetched if code == 200}
    beside = {p.name for p in out.iterdir() if p.suffix in (".png", ".css")}
    assert beside <= loaded, f"not loaded by the browser: {sorted(beside - loaded)}"


def test_the_console_check_catches_violations(tmp_path):
    (tmp_path / "bad.html").write_text(
        '<!DOCTYPE html><html><head><style>p{color:red}</style></head><body>'
        '<p style="color:blue">inline</p><img src="data:image/png;base64,iVBORw0KGgo=" alt="">'
        "</body></html>", encoding="utf-8")
    with _serve(tmp_path) as (base, _):
        console = _open(f"{base}/bad.html", tmp_path / "bad.png", tmp_path / "profile")
    assert len([m for m in console if "Content Security Policy" in m]) >= 3, console
