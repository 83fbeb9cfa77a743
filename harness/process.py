"""Child processes the harness owns: started in their own group, stopped as a whole tree.

A subject is often a launcher (a shell, `python -m`, a supervisor) whose children do the work, so
stopping only the first process leaves the real server running. Every process started here gets a
group of its own (POSIX session, Windows process group), and stopping it asks the whole group to
terminate (SIGTERM / CTRL_BREAK_EVENT), waits, then kills every descendant psutil still sees.
Processes still running when the interpreter exits (an interrupt between start and stop) are
stopped by an atexit hook, so no run leaves orphans behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

_LIVE: dict[int, subprocess.Popen] = {}


def start_process(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
) -> subprocess.Popen:
    """Start `argv` in a new process group; raises OSError when it cannot be executed."""
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    proc = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by stop_process_tree
        list(argv),
        cwd=None if cwd is None else str(cwd),
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        **kwargs,
    )
    _LIVE[proc.pid] = proc
    return proc


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _group_members(pgid: int) -> list[psutil.Process]:
    """Processes in POSIX process group `pgid` (children re-parented to init are found this way)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.pid != os.getpid():
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def _ask_to_terminate(proc: subprocess.Popen) -> None:
    try:
        if sys.platform == "win32":
            proc.send_signal(signal.CTRL_BREAK_EVENT)  # pylint: disable=no-member
        else:
            os.killpg(proc.pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass  # already gone


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def stop_process_tree(proc: subprocess.Popen, *, timeout: float = 10.0) -> int | None:
    """Stop `proc` and every descendant; return its exit code (None if it could not be reaped).

    An interrupt while waiting still kills the tree before it propagates. The root is waited for
    through Popen only: psutil would reap it and lose its exit code.
    """
    tree = _others(proc)
    try:
        if proc.poll() is None or tree:
            _ask_to_terminate(proc)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            _, alive = psutil.wait_procs(_alive(tree), timeout=max(0.1, min(timeout, 2.0)))
            tree = alive
    finally:
        # Whatever ignored the polite request, or anything left after an interrupt, is killed.
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        seen = {p.pid for p in tree}
        _kill_all(_alive(tree + [p for p in _others(proc) if p.pid not in seen]))
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.pop(proc.pid, None)
    return proc.returncode


def _others(proc: subprocess.Popen) -> list[psutil.Process]:
    """Descendants of `proc` and, on POSIX, members of its group (orphans included); not itself."""
    found = {p.pid: p for p in _descendants(proc.pid)}
    if sys.platform != "win32":
        found.update({p.pid: p for p in _group_members(proc.pid) if p.pid not in found})
    found.pop(proc.pid, None)
    return list(found.values())


def _alive(procs: Sequence[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            continue
    return out


def stop_all(timeout: float = 5.0) -> None:
    """Stop every process this module started that is still running."""
    for proc in list(_LIVE.values()):
        stop_process_tree(proc, timeout=timeout)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while inside, so teardown runs when a build is aborted.

    Jenkins stops an aborted build with SIGTERM, which would otherwise end the interpreter without
    running `finally` blocks. Only the main thread can install signal handlers; elsewhere this does
    nothing.
    """
    if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


atexit.register(stop_all)
