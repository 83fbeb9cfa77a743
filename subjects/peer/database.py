"""The database facade: one async interface, with queries either on the event loop or on a worker.

`blocking` mode calls the store function right away on the event loop thread: the coroutine never
suspends, so a long query or a slow commit holds up every request (Tribler before the thesis).
`worker` mode sends the call to the serialized `DatabaseWorker` and suspends until it is done, so
the loop serves other requests meanwhile (the thesis' StormDBManager).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from subjects.peer import store
from subjects.peer.dbworker import DatabaseWorker

MODES = ("blocking", "worker")


class Database:
    """`await db.run(store.func, *args)`, `await db.commit()`, `await db.close()`."""

    def __init__(self, path: Path, mode: str):
        if mode not in MODES:
            raise ValueError(f"database mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self._path = Path(path)
        self._conn = None
        self._worker: DatabaseWorker | None = None
        self._calls = self._commits = 0
        self._run_total = 0.0

    def open(self) -> None:
        """Open the connection (on the worker's thread in worker mode)."""
        if self.mode == "worker":
            self._worker = DatabaseWorker(lambda: store.connect(self._path))
            self._worker.start()
        else:
            self._conn = store.connect(self._path)

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `func(connection, *args, **kwargs)` and return its result."""
        if self._worker is not None:
            return await self._worker.run(func, *args, **kwargs)
        started = time.perf_counter()
        try:
            return func(self._conn, *args, **kwargs)
        finally:
            self._calls += 1
            self._run_total += time.perf_counter() - started

    async def commit(self) -> None:
        """Commit everything run so far."""
        if self._worker is not None:
            await self._worker.commit()
            return
        self._conn.commit()
        self._commits += 1

    async def close(self) -> None:
        """Finish queued calls and close; uncommitted changes are rolled back."""
        if self._worker is not None:
            await self._worker.shutdown()
            self._worker.join()
        elif self._conn is not None:
            self._conn.close()
            self._conn = None

    def statistics(self) -> dict[str, Any]:
        """Queue depth and timing counters (a blocking database has no queue)."""
        if self._worker is None:
            return {"mode": self.mode, "calls": self._calls, "commits": self._commits,
                    "queue_depth": 0, "max_queue_depth": 0, "wait_total_s": 0.0,
                    "run_total_s": round(self._run_total, 6)}
        stats = self._worker.stats()
        return {"mode": self.mode, "calls": stats.submitted, "commits": stats.commits,
                "failed": stats.failed, "queue_depth": stats.queue_depth,
                "max_queue_depth": stats.max_queue_depth,
                "wait_total_s": round(stats.wait_total, 6), "wait_max_s": round(stats.wait_max, 6),
                "run_total_s": round(stats.run_total, 6)}
