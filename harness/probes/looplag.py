"""Event-loop lag probe: how late a callback scheduled every interval runs on the subject's loop.

Runs inside the subject, standard library only. asyncio loops are caught when they start running
(BaseEventLoop.run_forever, which run_until_complete and asyncio.run go through); a Twisted reactor
when it is installed (twisted.internet.main.installReactor). Lateness is measured on the loop's
own clock, so it is exactly the delay the loop added to every callback due at that moment.
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any

from . import imports

MAX_SAMPLES = 200_000  # about 5.5 hours at 100 ms; beyond that the first samples are kept


class LagRecorder:
    """Lateness samples per source (kind of loop, main thread or not), thread-safe."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.RLock()
        self._samples: dict[tuple[str, bool], list[float]] = {}

    def add(self, kind: str, lateness: float, main_thread: bool) -> None:
        with self._lock:
            samples = self._samples.setdefault((kind, main_thread), [])
            if len(samples) < MAX_SAMPLES:
                samples.append(lateness if lateness > 0.0 else 0.0)

    def reset(self) -> None:
        """Start from zero with a new lock (after fork the old one may be held)."""
        self._lock = threading.RLock()
        self._samples = {}

    def snapshot(self) -> dict[str, Any] | None:
        """Round.probes["loop_lag"]: the main thread's busiest loop (else any loop's), or None.

        Loops in helper threads are usually idle; mixing their samples in would hide the lag of
        the loop that serves the subject.
        """
        with self._lock:
            sources = {key: list(values) for key, values in self._samples.items() if values}
        if not sources:
            return None
        main = {key: v for key, v in sources.items() if key[1]} or sources
        (kind, _), samples = max(main.items(), key=lambda kv: len(kv[1]))
        return {"kind": kind, "interval": self.interval, "samples": samples}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# --- asyncio ------------------------------------------------------------------------------------

_loop_started: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def attach_asyncio(loop: Any, recorder: LagRecorder) -> None:
    """Tick on `loop` every interval; call from the loop's thread as it starts running."""
    first = loop not in _loop_started
    _loop_started[loop] = loop.time()
    if not first:
        return
    main = _main_thread()
    interval = recorder.interval

    def tick(due: float) -> None:
        now = loop.time()
        # A timer that fell due while the loop was stopped measures the pause, not the loop.
        if due >= _loop_started.get(loop, due):
            recorder.add("asyncio", now - due, main)
        loop.call_at(now + interval, tick, now + interval)

    start = loop.time() + interval
    loop.call_at(start, tick, start)


def install_asyncio(recorder: LagRecorder) -> None:
    """Attach to every asyncio loop (of the standard library's loop classes) that runs."""

    def patch(base_events: Any) -> None:
        original = base_events.BaseEventLoop.run_forever
        if getattr(original, "__perf_probe__", False):
            return

        @functools.wraps(original)
        def run_forever(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                attach_asyncio(self, recorder)
            except Exception as exc:
                imports.on_error(f"loop_lag: cannot attach to {self!r}: {exc}")
            return original(self, *args, **kwargs)

        run_forever.__perf_probe__ = True  # type: ignore[attr-defined]
        base_events.BaseEventLoop.run_forever = run_forever

    imports.after_import("asyncio.base_events", patch)


# --- Twisted ------------------------------------------------------------------------------------


def attach_twisted(reactor: Any, recorder: LagRecorder) -> None:
    """Tick on the Twisted reactor every interval, from when it runs."""
    interval = recorder.interval

    def tick(due: float) -> None:
        now = reactor.seconds()
        recorder.add("twisted", now - due, _main_thread())
        reactor.callLater(interval, tick, now + interval)

    def start() -> None:
        reactor.callLater(interval, tick, reactor.seconds() + interval)

    reactor.callWhenRunning(start)


def install_twisted(recorder: LagRecorder) -> None:
    """Attach to whichever reactor the subject installs."""

    def patch(main: Any) -> None:
        original = main.installReactor
        if getattr(original, "__perf_probe__", False):
            return

        @functools.wraps(original)
        def installReactor(reactor: Any) -> Any:  # noqa: N802 (Twisted's name)
            result = original(reactor)
            try:
                attach_twisted(reactor, recorder)
            except Exception as exc:
                imports.on_error(f"loop_lag: cannot attach to {reactor!r}: {exc}")
            return result

        installReactor.__perf_probe__ = True  # type: ignore[attr-defined]
        main.installReactor = installReactor

    imports.after_import("twisted.internet.main", patch)


def install(recorder: LagRecorder) -> None:
    install_asyncio(recorder)
    install_twisted(recorder)
