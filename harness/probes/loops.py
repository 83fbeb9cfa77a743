"""Blocking calls on the event-loop thread, counted: which threads run a loop, what blocks it.

Runs inside the subject, standard library only. A thread runs an event loop while it is inside
asyncio's BaseEventLoop.run_forever (which run_until_complete and asyncio.run go through) or once
a Twisted reactor has started on it. Every call below made on such a thread blocks every other
request the loop serves, so it is counted exactly (calls, seconds, bytes) with its call site:

* "sqlite": statements (counted by the SQLite probe, harness/probes/sqlite.py; fetch time added);
* "file_read" / "file_write": Python file objects' reads and writes that reach the OS (the file
  probe, harness/probes/diskio.py);
* "sleep": time.sleep;
* "socket": send/recv/connect/accept on a socket in blocking mode (asyncio's own sockets are
  non-blocking and never counted);
* "subprocess": subprocess.run, call, check_call and check_output.

Snapshot (Round.probes["blocking"]):

    {"kinds": {KIND: {"calls", "total", "max", "bytes"}},
     "longest": {"kind", "seconds", "where", "via"} | None,
     "sites": [{"kind", "where", "via", "calls", "total"}]}   # the costliest TOP_SITES
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from . import frames, imports

KINDS = ("sqlite", "file_read", "file_write", "sleep", "socket", "subprocess")
TOP_SITES = 20
_perf = time.perf_counter
_get_ident = threading.get_ident
_loop_threads: dict[int, int] = {}  # thread ident -> loops running on it (nesting)


def on_loop() -> bool:
    """Whether the calling thread is running an event loop right now."""
    return _get_ident() in _loop_threads


def _enter() -> None:
    ident = _get_ident()
    _loop_threads[ident] = _loop_threads.get(ident, 0) + 1


def _leave() -> None:
    ident = _get_ident()
    count = _loop_threads.get(ident, 0) - 1
    if count > 0:
        _loop_threads[ident] = count
    else:
        _loop_threads.pop(ident, None)


class BlockingStats:
    """Thread-safe counters of blocking calls made on loop threads."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.RLock()
        self._kinds: dict[str, list[float]] = {}  # kind -> [calls, total, max, bytes]
        self._sites: dict[tuple[str, Any], list[float]] = {}
        self._longest: tuple[float, str, Any] | None = None

    def record(self, kind: str, elapsed: float, nbytes: int, site: Any) -> None:
        with self._lock:
            slot = self._kinds.get(kind)
            if slot is None:
                slot = self._kinds[kind] = [0, 0.0, 0.0, 0]
            slot[0] += 1
            slot[1] += elapsed
            slot[3] += nbytes
            if elapsed > slot[2]:
                slot[2] = elapsed
            key = (kind, site)
            known = self._sites.get(key)
            if known is None:
                self._sites[key] = [1, elapsed]
            else:
                known[0] += 1
                known[1] += elapsed
            if self._longest is None or elapsed > self._longest[0]:
                self._longest = (elapsed, kind, site)

    def add_time(self, kind: str, elapsed: float) -> None:
        """Time that belongs to calls already counted (a statement's fetches)."""
        with self._lock:
            slot = self._kinds.get(kind)
            if slot is not None:
                slot[1] += elapsed

    def snapshot(self) -> dict[str, Any] | None:
        with self._lock:
            kinds = {k: list(v) for k, v in self._kinds.items()}
            sites = list(self._sites.items())
            longest = self._longest
        described: dict[tuple[str, str, str], list[float]] = {}
        for (kind, site), (calls, total) in sites:
            where, via = frames.describe(site)
            slot = described.setdefault((kind, where, via), [0, 0.0])
            slot[0] += calls
            slot[1] += total
        top = sorted(described.items(), key=lambda kv: -kv[1][1])[:TOP_SITES]
        out_longest = None
        if longest is not None:
            where, via = frames.describe(longest[2])
            out_longest = {"kind": longest[1], "seconds": longest[0], "where": where, "via": via}
        return {
            "kinds": {k: {"calls": int(c), "total": t, "max": m, "bytes": int(b)}
                      for k, (c, t, m, b) in kinds.items()},
            "longest": out_longest,
            "sites": [{"kind": k, "where": w, "via": v, "calls": int(c), "total": t}
                      for (k, w, v), (c, t) in top],
        }


BLOCKING = BlockingStats()


def _count(kind: str, start: float, nbytes: int = 0) -> None:
    try:
        BLOCKING.record(kind, _perf() - start, nbytes, frames.here(2))
    except Exception:
        pass


# --- which threads run a loop --------------------------------------------------------------------


def _patch_asyncio(base_events: Any) -> None:
    original = base_events.BaseEventLoop.run_forever
    if getattr(original, "__perf_loops__", False):
        return

    @functools.wraps(original)
    def run_forever(self: Any, *args: Any, **kwargs: Any) -> Any:
        _enter()
        try:
            return original(self, *args, **kwargs)
        finally:
            _leave()

    run_forever.__perf_loops__ = True  # type: ignore[attr-defined]
    base_events.BaseEventLoop.run_forever = run_forever


def _patch_twisted(main: Any) -> None:
    original = main.installReactor
    if getattr(original, "__perf_loops__", False):
        return

    @functools.wraps(original)
    def installReactor(reactor: Any) -> Any:  # noqa: N802 (Twisted's name)
        result = original(reactor)
        reactor.callWhenRunning(_enter)
        return result

    installReactor.__perf_loops__ = True  # type: ignore[attr-defined]
    main.installReactor = installReactor


def track_loops() -> None:
    """Follow asyncio loops and the Twisted reactor as they start (idempotent)."""
    imports.after_import("asyncio.base_events", _patch_asyncio)
    imports.after_import("twisted.internet.main", _patch_twisted)


# --- the blocking calls --------------------------------------------------------------------------


def _wrap_sleep(time_module: Any) -> None:
    original = time_module.sleep
    if getattr(original, "__perf_loops__", False):
        return

    @functools.wraps(original)
    def sleep(seconds: Any) -> Any:
        if _get_ident() not in _loop_threads:
            return original(seconds)
        start = _perf()
        try:
            return original(seconds)
        finally:
            _count("sleep", start)

    sleep.__perf_loops__ = True  # type: ignore[attr-defined]
    time_module.sleep = sleep


_SOCKET_METHODS = ("recv", "recv_into", "recvfrom", "recvfrom_into", "send", "sendall", "sendto",
                   "connect", "accept")


def _wrap_socket_method(cls: Any, name: str) -> None:
    original = getattr(cls, name, None)
    if original is None or getattr(original, "__perf_loops__", False):
        return
    sends = name.startswith("send")

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _get_ident() not in _loop_threads or self.gettimeout() == 0.0:
            return original(self, *args, **kwargs)
        start = _perf()
        result = original(self, *args, **kwargs)
        nbytes = result if sends and isinstance(result, int) else 0
        if name in ("recv", "recvfrom"):
            data = result[0] if name == "recvfrom" else result
            nbytes = len(data) if isinstance(data, bytes) else 0
        _count("socket", start, nbytes)
        return result

    method.__name__ = name
    method.__doc__ = getattr(original, "__doc__", None)
    method.__perf_loops__ = True  # type: ignore[attr-defined]
    setattr(cls, name, method)


def _wrap_subprocess(module: Any) -> None:
    guard = threading.local()
    for name in ("run", "call", "check_call", "check_output"):
        original = getattr(module, name, None)
        if original is None or getattr(original, "__perf_loops__", False):
            continue

        def make(original: Any) -> Any:
            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if _get_ident() not in _loop_threads or getattr(guard, "busy", False):
                    return original(*args, **kwargs)
                guard.busy = True  # check_call calls call: count the outer one only
                start = _perf()
                try:
                    return original(*args, **kwargs)
                finally:
                    guard.busy = False
                    _count("subprocess", start)

            wrapper.__perf_loops__ = True  # type: ignore[attr-defined]
            return wrapper

        setattr(module, name, make(original))


def install() -> None:
    """Count blocking calls on loop threads (the SQLite and file probes report theirs here)."""
    track_loops()
    import socket

    _wrap_sleep(time)
    for name in _SOCKET_METHODS:
        _wrap_socket_method(socket.socket, name)
    imports.after_import("subprocess", _wrap_subprocess)
