"""Fixtures that seed state directories and start real peer processes, always cleaned up."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
READY = "peer ready on "


def peer_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `python -m subjects.peer ARGS` to completion."""
    return subprocess.run([sys.executable, "-m", "subjects.peer", *args], cwd=ROOT, check=check,
                          capture_output=True, text=True, timeout=120)


def seed_dir(path: Path, *, seed: int, channels: int, torrents: int) -> Path:
    peer_cli("seed", "--state-dir", str(path), "--seed", str(seed), "--channels", str(channels),
             "--torrents", str(torrents))
    return path


@dataclass
class Peer:
    """A running peer process."""

    proc: subprocess.Popen[str]
    url: str
    state_dir: Path

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get_json(self, path: str) -> dict:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)

    def post_json(self, path: str, payload: object) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {"error": exc.read().decode()}

    def terminate(self, timeout: float = 30.0) -> int:
        """The clean stop a user or the harness would send; returns the exit code."""
        sig = signal.CTRL_BREAK_EVENT if sys.platform == "win32" else signal.SIGTERM
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def _start(state_dir: Path, mode: str, peers: tuple[str, ...], sync_interval: float) -> Peer:
    flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "subjects.peer", "serve", "--state-dir", str(state_dir),
         "--port", "0", "--db", mode, "--peers", ",".join(peers),
         "--sync-interval", str(sync_interval)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, creationflags=flags)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=60)
    except queue.Empty:
        line = ""
    peer = Peer(proc, line[len(READY):].strip(), state_dir)
    if not line.startswith(READY):
        proc.kill()
        proc.wait()
        raise AssertionError(f"peer did not print the ready line, got {line!r}")
    return peer


@pytest.fixture
def spawn() -> Iterator:
    """`spawn(state_dir, mode=..., peers=..., sync_interval=...)` starts a peer; every peer
    started is killed at the end of the test, also when it fails."""
    started: list[Peer] = []

    def start(state_dir: Path, mode: str = "worker", peers: tuple[str, ...] = (),
              sync_interval: float = 0.0) -> Peer:
        peer = _start(state_dir, mode, peers, sync_interval)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        if peer.proc.poll() is None:
            peer.proc.kill()
        peer.proc.wait()
        if peer.proc.stdout:
            peer.proc.stdout.close()


@pytest.fixture(scope="session")
def seeded_sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small seeded state directories (different seeds, same channels); copy before serving
    if a test writes to them."""
    base = tmp_path_factory.mktemp("sources")
    return (seed_dir(base / "one", seed=1, channels=40, torrents=3000),
            seed_dir(base / "two", seed=2, channels=40, torrents=3000))
