"""Work handed to another thread keeps its origin: the call site that queued it.

Runs inside the subject, standard library only. When work is queued for another thread, the
queueing call site (harness/probes/frames.py) is captured and travels with the work; while the
other thread runs it, frames.site() names that origin as the caller and the worker thread's own
frame as `via`. Covered:

* concurrent.futures.ThreadPoolExecutor.submit, hence loop.run_in_executor and asyncio.to_thread
  (the submitted callable is wrapped);
* queue.Queue (put/get; subclasses with their own _put/_get such as PriorityQueue are left alone)
  and queue.SimpleQueue (replaced by a subclass): the item travels with its origin and the getting
  thread works for that origin until its next get, the shape of a worker loop such as the
  reference peer's serialized database worker;
* Twisted's deferToThreadPool, hence deferToThread.

The first project frame of the queueing code is often the project's own database layer; name it
in `[probes] skip_modules` so the origin is the code that called that layer.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

from . import frames, imports


def _capture() -> Any:
    """The origin of work queued now, (site, thread): the current thread's own origin if it has
    one (work queued from handed-off work keeps the first origin), else its call site here."""
    try:
        inherited = getattr(frames.ORIGIN, "site", None)
        if inherited is not None:
            return (inherited, getattr(frames.ORIGIN, "thread", None))
        return (frames.site(sys._getframe(2)), threading.get_ident())
    except Exception:  # e.g. at interpreter shutdown: the work itself must still be queued
        return (None, None)


def _adopt(origin: Any) -> tuple[Any, Any]:
    """Make `origin` the calling thread's; returns the previous one. A thread never adopts an
    origin of its own (a result coming back from a worker is not work handed to it)."""
    previous = (getattr(frames.ORIGIN, "site", None), getattr(frames.ORIGIN, "thread", None))
    site, thread = origin
    if thread == threading.get_ident():
        site = thread = None
    frames.ORIGIN.site, frames.ORIGIN.thread = site, thread
    return previous


def carrying(function: Any, origin: Any) -> Any:
    """`function`, run under `origin` in whichever thread calls it."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        previous = _adopt(origin)
        try:
            return function(*args, **kwargs)
        finally:
            frames.ORIGIN.site, frames.ORIGIN.thread = previous

    return run


class _Carried:
    __slots__ = ("item", "origin")

    def __init__(self, item: Any, origin: Any) -> None:
        self.item = item
        self.origin = origin


def _unwrap(found: Any) -> Any:
    """The item a get returns; the getting thread now works for the item's origin (or none)."""
    if isinstance(found, _Carried):
        _adopt(found.origin)
        return found.item
    _adopt((None, None))
    return found


def _patch_executor(thread_module: Any) -> None:
    cls = thread_module.ThreadPoolExecutor
    original = cls.submit
    if getattr(original, "__perf_probe__", False):
        return

    @functools.wraps(original)
    def submit(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, carrying(fn, _capture()), *args, **kwargs)

    submit.__perf_probe__ = True  # type: ignore[attr-defined]
    cls.submit = submit


def _patch_queue(queue_module: Any) -> None:
    base = queue_module.Queue
    if getattr(base._put, "__perf_probe__", False):
        return
    original_put, original_get = base._put, base._get

    def _put(self: Any, item: Any) -> None:
        # wrap only where our _get unwraps: a subclass with its own _get would hand it out
        if type(self)._get is _get:
            item = _Carried(item, _capture())
        original_put(self, item)

    def _get(self: Any) -> Any:
        return _unwrap(original_get(self))

    _put.__perf_probe__ = True  # type: ignore[attr-defined]
    base._put, base._get = _put, _get

    simple = queue_module.SimpleQueue
    if isinstance(simple, type) and not getattr(simple, "__perf_probe__", False):

        class SimpleQueue(simple):  # type: ignore[misc, valid-type]
            __perf_probe__ = True
            __doc__ = simple.__doc__

            def put(self, item, block=True, timeout=None):
                if type(self).get is SimpleQueue.get:  # a subclass's own get would not unwrap
                    item = _Carried(item, _capture())
                return super().put(item, block, timeout)

            def put_nowait(self, item):
                return self.put(item, False)

            def get(self, block=True, timeout=None):
                return _unwrap(super().get(block, timeout))

            def get_nowait(self):
                return _unwrap(super().get(False))

        SimpleQueue.__module__ = simple.__module__
        SimpleQueue.__qualname__ = simple.__qualname__
        queue_module.SimpleQueue = SimpleQueue


def _patch_twisted(threads: Any) -> None:
    original = threads.deferToThreadPool
    if getattr(original, "__perf_probe__", False):
        return

    @functools.wraps(original)
    def deferToThreadPool(reactor: Any, threadpool: Any, f: Any, *args: Any,  # noqa: N802
                          **kwargs: Any) -> Any:
        return original(reactor, threadpool, carrying(f, _capture()), *args, **kwargs)

    deferToThreadPool.__perf_probe__ = True  # type: ignore[attr-defined]
    threads.deferToThreadPool = deferToThreadPool


def install() -> None:
    """Follow work into executors, queues and Twisted's thread pool (idempotent)."""
    imports.after_import("concurrent.futures.thread", _patch_executor)
    imports.after_import("queue", _patch_queue)
    imports.after_import("twisted.internet.threads", _patch_twisted)
