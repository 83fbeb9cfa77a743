"""Child processes the harness owns: started in their own group, stopped as a whole tree.

A subject is often a launcher (a shell, `python -m`, a supervisor) whose children do the work, so
stopping only the first process leaves the real server running. Every process started here gets a
group of its own (POSIX session, Windows process group), and stopping it asks the whole group to
terminate (SIGTERM / CTRL_BREAK_EVENT), waits, then kills every descendant psutil still sees.
Processes still running when the interpreter exits (an interrupt between start and stop) are
stopped by an atexit hook, so no run leaves orphans behind.

Every process started here carries an environment marker (HARNESS_RUN_MARKER, one value per
started process, sharing this harness process' prefix) that its descendants inherit. A daemon that
double-forks and calls setsid() leaves both the parent chain and the process group, but not its
environment: teardown finds it by the marker (and by its session, where the platform tells).

Stopping follows a sequence: an optional first step (an HTTP request the caller sends), then a
signal, then SIGKILL. Which step ended the process and how long it took is returned as a
StopOutcome; reaching SIGKILL carries a warning for the output and results.json.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

_LIVE: dict[int, subprocess.Popen] = {}
_MARKERS: dict[int, str] = {}  # pid of a started process -> its marker value

RUN_MARKER = "HARNESS_RUN_MARKER"
# This harness process' prefix; every started process gets PREFIX-N, so one tree can be told
# from another while a final sweep finds everything this run started.
# Fixed length: the instruction tier counts every instruction, and an environment that grows by
# a byte between two runs shows up in the counts.
_PREFIX = f"{os.getpid():08d}-{uuid.uuid4().hex[:12]}"
_COUNTER = [0]


@dataclass(frozen=True)
class StopOutcome:
    """How a process tree ended: the step that ended it, after how long, and its exit code."""

    step: str  # "exited" (already gone), "http PUT /shutdown", "SIGTERM", "SIGINT", "SIGKILL"
    seconds: float
    returncode: int | None
    warning: str | None = None  # set when it had to be killed

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"step": self.step, "seconds": round(self.seconds, 3)}
        if self.warning:
            out["warning"] = self.warning
        return out


def marker_prefix() -> str:
    """The marker prefix of every process this harness process starts."""
    return _PREFIX


def _next_marker() -> str:
    _COUNTER[0] += 1
    return f"{_PREFIX}-{_COUNTER[0]:08d}"


def start_process(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    text: bool = False,
) -> subprocess.Popen:
    """Start `argv` in a new process group; raises OSError when it cannot be executed."""
    kwargs: dict[str, Any] = {}
    marker = _next_marker()
    environment = dict(os.environ if env is None else env)
    environment[RUN_MARKER] = marker
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    proc = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped by stop_process_tree
        list(argv),
        cwd=None if cwd is None else str(cwd),
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=text,
        **kwargs,
    )
    _LIVE[proc.pid] = proc
    _MARKERS[proc.pid] = marker
    return proc


def marked(marker: str, *, prefix: bool = False) -> list[psutil.Process]:
    """Running processes whose environment carries `marker` (or a marker starting with it)."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            value = proc.environ().get(RUN_MARKER)
        except (psutil.Error, OSError):
            continue
        if value is not None and (value == marker or (prefix and value.startswith(marker + "-"))):
            found.append(proc)
    return found


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


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


def _signal_tree(proc: subprocess.Popen, tree: Sequence[psutil.Process], signum: int) -> None:
    """Send `signum` once to every process of the tree: the root's group as a whole, and each
    member that left that group (a daemon) by itself."""
    if sys.platform == "win32":
        _ask_to_terminate(proc)
        return
    try:
        os.killpg(proc.pid, signum)
    except (OSError, ValueError):
        pass
    for member in tree:
        try:
            if os.getpgid(member.pid) != proc.pid:
                member.send_signal(signum)
        except (OSError, psutil.Error):
            pass


def _wait_all(proc: subprocess.Popen, tree: list[psutil.Process], timeout: float,
              repeat: Callable[[], None] | None = None) -> list[psutil.Process]:
    """Wait up to `timeout` for the root and the tree; what is still alive (root excluded).
    `repeat` is called every 2 s while they run (not at once)."""
    deadline = time.monotonic() + timeout
    next_repeat = time.monotonic() + 2.0
    while True:
        alive = _alive(tree)
        if proc.poll() is not None and not alive:
            return []
        now = time.monotonic()
        if now >= deadline:
            return alive
        if repeat is not None and now >= next_repeat:
            repeat()
            next_repeat = now + 2.0
        time.sleep(min(0.05, deadline - now))


def stop_process_tree(proc: subprocess.Popen, *, timeout: float = 10.0) -> int | None:
    """Stop `proc` and every descendant; return its exit code (None if it could not be reaped)."""
    return stop_sequence(proc, timeout=timeout).returncode


def stop_sequence(
    proc: subprocess.Popen,
    *,
    timeout: float = 10.0,
    first: tuple[str, Callable[[], None]] | None = None,
    signal_name: str = "SIGTERM",
    repeat_signal: bool = False,
) -> StopOutcome:
    """Stop `proc` and every descendant (marked, in its group or session, or its children).

    The steps: `first` (a label and a callable, e.g. an HTTP shutdown request), waiting `timeout`;
    then `signal_name` to the whole tree, waiting `timeout` (re-sent every 2 s when
    `repeat_signal`: valgrind only delivers it at the next system call); then SIGKILL, with a
    warning. An interrupt while waiting still kills the tree before it propagates. The root is
    waited for through Popen only: psutil would reap it and lose its exit code.
    """
    began = time.monotonic()
    tree = _others(proc)
    step = "exited"
    warning = None
    done = False
    try:
        if proc.poll() is None or _alive(tree):
            if first is not None:
                step = first[0]
                try:
                    first[1]()
                except Exception:  # pylint: disable=broad-exception-caught  # next step follows
                    pass
                tree = _union(tree, _others(proc))
                done = not _wait_all(proc, tree, timeout) and proc.poll() is not None
            if not done:
                step = signal_name
                signum = _signal_number(signal_name)
                tree = _union(tree, _others(proc))
                _signal_tree(proc, tree, signum)
                repeat = (lambda: _signal_tree(proc, _alive(tree), signum)) if repeat_signal \
                    else None
                done = not _wait_all(proc, tree, timeout, repeat) and proc.poll() is not None
            if not done:
                step = "SIGKILL"
                waited = time.monotonic() - began
                warning = (f"the subject did not stop within {waited:.1f} s ("
                           f"{' then '.join(_steps(first, signal_name))}) and was killed with "
                           f"SIGKILL; configure [subject] stop (an HTTP request or another "
                           f"signal) or make it exit on {signal_name}")
        done = True
    finally:
        # Whatever ignored the polite requests, or anything left after an interrupt, is killed.
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        _kill_all(_alive(_union(tree, _others(proc))))
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.pop(proc.pid, None)
        _MARKERS.pop(proc.pid, None)
    del done
    return StopOutcome(step, time.monotonic() - began, proc.returncode, warning)


def _steps(first: tuple[str, Callable[[], None]] | None, signal_name: str) -> list[str]:
    return ([first[0]] if first else []) + [signal_name]


def _signal_number(name: str) -> int:
    if sys.platform == "win32":
        return int(signal.SIGTERM)
    return int(getattr(signal, name))


def _union(first: list[psutil.Process], second: list[psutil.Process]) -> list[psutil.Process]:
    seen = {p.pid for p in first}
    return first + [p for p in second if p.pid not in seen]


def _others(proc: subprocess.Popen) -> list[psutil.Process]:
    """Descendants of `proc` and, on POSIX, members of its group or session (orphans included),
    and every process carrying its marker (daemons that left both); not itself. One scan."""
    found = {p.pid: p for p in _descendants(proc.pid)}
    marker = _MARKERS.get(proc.pid)
    me = os.getpid()
    for other in psutil.process_iter():
        if other.pid in found or other.pid in (me, proc.pid):
            continue
        try:
            if sys.platform != "win32" and proc.pid in (os.getpgid(other.pid),
                                                        os.getsid(other.pid)):
                found[other.pid] = other
            elif marker is not None and other.environ().get(RUN_MARKER) == marker:
                found[other.pid] = other
        except (OSError, psutil.Error):
            continue
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
    _kill_all(marked(_PREFIX, prefix=True))  # daemons whose starter was already stopped


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (an aborted build): unwinds like Ctrl-C, exits 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


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
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


atexit.register(stop_all)
