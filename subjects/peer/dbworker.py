"""The serialized database worker: one thread owns the connection and runs calls in FIFO order.

This is the thesis' StormDBManager (chapter 4.2) for asyncio: a caller submits (function,
arguments, keyword arguments, future) and awaits the future; the worker thread takes items from a
thread-safe queue strictly in submission order, so queries never race. Two sentinels tell the
worker to commit or to stop; stopping drains everything submitted before it. SQLite releases the
GIL while it executes a statement or waits for the disk, so the event loop keeps serving requests
while the worker is busy.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_COMMIT = object()
_SHUTDOWN = object()


class WorkerClosedError(RuntimeError):
    """A call was submitted after shutdown; the database is closed."""


@dataclass(frozen=True)
class WorkerStats:
    """Counters of the worker's queue (times in seconds)."""

    submitted: int
    completed: int
    failed: int
    commits: int
    queue_depth: int
    max_queue_depth: int
    wait_total: float
    wait_max: float
    run_total: float


@dataclass
class _Item:
    func: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    queued_at: float


class DatabaseWorker:
    """Owns one sqlite3 connection on its own thread; `await worker.run(func, *args)` calls
    `func(connection, *args)` there."""

    def __init__(self, opener: Callable[[], sqlite3.Connection], name: str = "db-worker"):
        self._opener = opener
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the counters and the closed flag
        self._closed = False
        self._depth = self._max_depth = 0
        self._submitted = self._completed = self._failed = self._commits = 0
        self._wait_total = self._wait_max = self._run_total = 0.0
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread and open the connection on it; raises if opening failed."""
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            raise self._open_error

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Queue `func(connection, *args, **kwargs)`; the order of calls is the order of execution.

        Queued at call time (not when awaited), so `gather(run(a), run(b))` runs a before b.
        """
        return self._submit(func, args, kwargs)

    def commit(self) -> asyncio.Future[Any]:
        """Queue a commit after everything submitted so far."""
        return self._submit(_COMMIT, (), {})

    def shutdown(self) -> asyncio.Future[Any]:
        """Queue the stop: calls submitted before it still run, later ones are refused.

        Uncommitted changes are rolled back when the connection closes; commit first to keep them.
        """
        return self._submit(_SHUTDOWN, (), {})

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after shutdown)."""
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the worker thread is still running."""
        return self._thread.is_alive()

    def stats(self) -> WorkerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return WorkerStats(self._submitted, self._completed, self._failed, self._commits,
                               self._depth, self._max_depth, self._wait_total, self._wait_max,
                               self._run_total)

    def _submit(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._closed:
                raise WorkerClosedError("the database worker was shut down; no more calls")
            if func is _SHUTDOWN:
                self._closed = True
            self._submitted += 1
            self._depth += 1
            self._max_depth = max(self._max_depth, self._depth)
            # Put under the lock so the queue order is exactly the order counted here.
            self._queue.put(_Item(func, args, kwargs, future, loop, time.perf_counter()))
        return future

    def _main(self) -> None:
        try:
            conn = self._opener()
        except BaseException as exc:  # reported to start(), which re-raises it
            self._open_error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                item = self._queue.get()
                if not self._execute(conn, item):
                    return
        finally:
            conn.close()  # a no-op after the shutdown sentinel closed it

    def _execute(self, conn: sqlite3.Connection, item: _Item) -> bool:
        started = time.perf_counter()
        result: Any = None
        error: BaseException | None = None
        try:
            if item.func is _COMMIT:
                conn.commit()
            elif item.func is _SHUTDOWN:
                conn.close()  # closed before the caller hears back, so "awaited" means "closed"
            else:
                result = item.func(conn, *item.args, **item.kwargs)
        except Exception as exc:  # the caller gets it; the worker lives on
            error = exc
        ended = time.perf_counter()
        self._account(item, started, ended, error is not None)
        try:
            item.loop.call_soon_threadsafe(_settle, item.future, result, error)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            pass
        return item.func is not _SHUTDOWN

    def _account(self, item: _Item, started: float, ended: float, failed: bool) -> None:
        wait = started - item.queued_at
        with self._lock:
            self._depth -= 1
            self._completed += not failed
            self._failed += failed
            self._commits += item.func is _COMMIT and not failed
            self._wait_total += wait
            self._wait_max = max(self._wait_max, wait)
            self._run_total += ended - started


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the caller gave up waiting; the call itself already ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
