"""Process trees: started in their own group, stopped whole, also when interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from harness import process

pytestmark = pytest.mark.integration

SLEEPER = "import time\nwhile True: time.sleep(0.05)"
SPAWNER = (
    "import subprocess, sys, time\n"
    f"child = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}])\n"
    "print(child.pid, flush=True)\n"
    "while True: time.sleep(0.05)"
)
STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ignoring', flush=True)\n"
    "while True: time.sleep(0.05)"
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start(code: str) -> subprocess.Popen:
    return process.start_process([sys.executable, "-c", code], stdout=subprocess.PIPE)


def test_stopping_a_launcher_also_stops_the_child_it_spawned():
    proc = _start(SPAWNER)
    child = int(proc.stdout.readline())
    assert not _gone(child)
    process.stop_process_tree(proc, timeout=5)
    proc.stdout.close()
    assert _gone(proc.pid) and _gone(child)


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout():
    proc = _start(STUBBORN)
    assert proc.stdout.readline().strip() == b"ignoring"
    code = process.stop_process_tree(proc, timeout=0.3)
    proc.stdout.close()
    assert _gone(proc.pid)
    if sys.platform != "win32":
        assert code == -signal.SIGKILL


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX sessions")
def test_each_process_gets_a_group_of_its_own():
    proc = _start(SLEEPER)
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
    finally:
        process.stop_process_tree(proc)
        proc.stdout.close()


def test_an_interrupt_while_waiting_still_kills_the_tree(monkeypatch):
    proc = _start(SPAWNER)
    child = int(proc.stdout.readline())
    real_wait = subprocess.Popen.wait
    calls = []

    def interrupted_wait(self, timeout=None):
        calls.append(timeout)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        process.stop_process_tree(proc, timeout=5)
    proc.stdout.close()
    assert _gone(proc.pid) and _gone(child)


def test_stop_all_stops_what_is_still_running():
    proc = _start(SLEEPER)
    process.stop_all(timeout=2)
    proc.stdout.close()
    assert _gone(proc.pid)
    assert proc.pid not in process._LIVE


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_becomes_keyboard_interrupt_inside_the_block():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with process.sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # the handler runs between bytecodes, at once
                pass
    assert signal.getsignal(signal.SIGTERM) == previous
