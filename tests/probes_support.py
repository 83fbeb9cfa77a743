"""Starting, loading and stopping real subjects for the probe tests (free ports, SIGTERM stop)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from harness.experiment import Probes
from harness.probes import probe_environment

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "data" / "sqlite_app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probed_env(
    data_dir: Path, probes: Probes, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env, warnings = probe_environment(probes, data_dir=data_dir, base_env=os.environ.copy(),
                                      is_python=True)
    assert warnings == []
    env.update(extra or {})
    return env


def get(url: str, timeout: float = 10.0, data: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def wait_ready(proc: subprocess.Popen, url: str, deadline: float = 30.0) -> None:
    """Poll `url` until it answers; fail with the subject's output if it exits first."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"subject exited with {proc.returncode} before it was ready")
        try:
            get(url, timeout=1.0)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"subject not ready at {url} after {deadline} s")


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGTERM (so the probes' at-exit flush runs), then kill if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], cwd: Path, health: str, log: Path
) -> Iterator[subprocess.Popen]:
    """The subject started with its output in `log` (a file: a full pipe would stall it)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                wait_ready(proc, health)
            except AssertionError as exc:
                stop(proc)
                raise AssertionError(f"{exc}; output: {log.read_text(errors='replace')}") from None
            yield proc
        finally:
            stop(proc)


@contextlib.contextmanager
def sqlite_app(tmp: Path, env: dict[str, str], items: int = 200) -> Iterator[str]:
    """The test app under `env`, cwd = the project root; yields its base URL."""
    port = free_port()
    command = [sys.executable, str(APP), "--port", str(port), "--db", str(tmp / "app.db"),
               "--items", str(items)]
    base = f"http://127.0.0.1:{port}"
    with running(command, env, ROOT, base + "/health", tmp / "app.log"):
        yield base


def app_line(marker: str) -> int:
    """The line of tests/data/sqlite_app.py whose comment is `# marker`."""
    for number, line in enumerate(APP.read_text().splitlines(), start=1):
        if line.rstrip().endswith("# " + marker):
            return number
    raise AssertionError(f"no line marked {marker!r} in {APP}")
