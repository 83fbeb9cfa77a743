"""SQLite query probe: times every sqlite3 operation per normalised statement and per caller.

Runs inside the subject (loaded by harness/probes/boot/sitecustomize.py), so it imports only the
standard library. sqlite3.Connection and sqlite3.Cursor are C types whose methods cannot be
patched, so `sqlite3.connect` is wrapped to pass a Connection subclass as `factory`, and that
subclass hands out a Cursor subclass; both time the calls and then defer to the C methods.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import sys
import threading
import time
from typing import Any

from . import diskio, frames, loops

STATEMENT_OPERATIONS = ("execute", "executemany", "executescript")  # a statement sent to SQLite
FETCH_OPERATIONS = ("fetchone", "fetchall", "fetchmany", "iterate")  # rows coming back
TOP_CALLERS = 5
MAX_STATEMENTS = 5000  # beyond this (a statement built with unbound values) fold into OTHER
OTHER = "<other statements>"
UNKNOWN = "<unknown statement>"

_perf = time.perf_counter

_TOKEN = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?\*/)
      | (?P<blob>[xX]'[0-9a-fA-F]*')
      | (?P<string>'(?:[^']|'')*')
      | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
      | (?P<param>\?\d*|[:@$][A-Za-z_]\w*)
      | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<space>\s+)""",
    re.VERBOSE | re.DOTALL,
)
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_REPEATED_ROWS = re.compile(r"(\(\s*\?(?:\s*,\s*\?)*\s*\))(?:\s*,\s*\1)+")
_REPLACED = {"blob": "?", "string": "?", "number": "?", "comment": " ", "space": " "}
_normalised: dict[str, str] = {}
_NORMALISED_CACHE = 20000


def _token(match: re.Match[str]) -> str:
    return _REPLACED.get(match.lastgroup or "", match.group())


def normalise(sql: Any) -> str:
    """The statement with literals (numbers, strings, blobs, IN-lists) replaced by `?`."""
    if not isinstance(sql, str):
        return UNKNOWN
    cached = _normalised.get(sql)
    if cached is not None:
        return cached
    text = _TOKEN.sub(_token, sql)
    text = _REPEATED_ROWS.sub(r"\1", _IN_LIST.sub("IN (?)", text))
    text = " ".join(text.split()).rstrip(";").rstrip()
    if len(_normalised) < _NORMALISED_CACHE:
        _normalised[sql] = text
    return text


class _Tally:
    """Running totals of one statement (its executes, and the fetches of its rows), with callers."""

    __slots__ = ("calls", "total", "max", "min", "rows", "fetch_total", "loop_calls", "loop_total",
                 "write_bytes", "callers")

    def __init__(self) -> None:
        self.calls = 0
        self.total = 0.0
        self.max = 0.0
        self.min = float("inf")
        self.rows = 0
        self.fetch_total = 0.0
        self.loop_calls = 0
        self.loop_total = 0.0
        self.write_bytes = 0
        self.callers: dict[Any, list[float]] = {}  # site key (probes/frames.py) -> [calls, total]

    def as_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "total": self.total, "max": self.max,
                "min": self.min if self.calls else 0.0, "rows": self.rows,
                "fetch_total": self.fetch_total, "loop_calls": self.loop_calls,
                "loop_total": self.loop_total, "write_bytes": self.write_bytes}


class QueryStats:
    """Thread-safe aggregation of timed sqlite3 operations.

    Statements (execute, executemany, executescript, COMMIT, ROLLBACK) count one call each; the
    fetches of a statement's rows add their time and rows to the statement's row (and to the
    caller that executed it) without counting a call, so a statement is one row of the breakdown.
    The per-operation totals keep every fetch as its own call.
    """

    def __init__(self) -> None:
        # Re-entrant: a SIGTERM handler may snapshot while the same thread is inside record().
        self._lock = threading.RLock()
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._operations: dict[str, _Tally] = {}

    def _tally(self, statement: str, operation: str) -> _Tally:
        key = (statement, operation)
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= MAX_STATEMENTS:
                key = (OTHER, operation)
            tally = self._tallies.setdefault(key, _Tally())
        return tally

    def _operation(self, operation: str, elapsed: float, rows: int) -> None:
        tally = self._operations.get(operation)
        if tally is None:
            tally = self._operations[operation] = _Tally()
        tally.calls += 1
        tally.total += elapsed
        tally.rows += rows
        if elapsed > tally.max:
            tally.max = elapsed
        if elapsed < tally.min:
            tally.min = elapsed

    def record(self, statement: str, operation: str, elapsed: float, rows: int, site: Any,
               on_loop: bool = False, write_bytes: int = 0) -> None:
        """One statement sent to SQLite (from `site`, on the event-loop thread or not)."""
        with self._lock:
            tally = self._tally(statement, operation)
            tally.calls += 1
            tally.total += elapsed
            tally.rows += rows
            tally.write_bytes += write_bytes
            if on_loop:
                tally.loop_calls += 1
                tally.loop_total += elapsed
            if elapsed > tally.max:
                tally.max = elapsed
            if elapsed < tally.min:
                tally.min = elapsed
            known = tally.callers.get(site)
            if known is None:
                tally.callers[site] = [1, elapsed]
            else:
                known[0] += 1
                known[1] += elapsed
            self._operation(operation, elapsed, rows)

    def fetched(self, statement: str, operation: str, fetch: str, elapsed: float, rows: int,
                site: Any, on_loop: bool = False) -> None:
        """Rows of the statement executed by `operation` at `site` came back through `fetch`."""
        with self._lock:
            tally = self._tally(statement, operation)
            tally.total += elapsed
            tally.fetch_total += elapsed
            tally.rows += rows
            if on_loop:
                tally.loop_total += elapsed
            known = tally.callers.get(site)
            if known is None:
                tally.callers[site] = [0, elapsed]
            else:
                known[1] += elapsed
            self._operation(fetch, elapsed, rows)

    def reset(self) -> None:
        """Start from zero with a new lock (after fork, the old one may be held by a thread the
        child does not have; at the end of the warm-up, so only the measured requests count)."""
        self._lock = threading.RLock()
        self._tallies = {}
        self._operations = {}
        del _deferred[:]

    def snapshot(self) -> dict[str, Any]:
        """The data shape of Round.probes["sqlite"] (see harness/probes/__init__.py)."""
        while _deferred:
            self.fetched(*_deferred.pop())
        with self._lock:
            tallies = self._tallies.copy()  # a copy: a re-entrant record() must not resize it
            items = [(key, t.as_json(), t.callers.copy()) for key, t in tallies.items()]
            operations = {op: t.as_json() for op, t in self._operations.items()}
        for totals in operations.values():
            for extra in ("fetch_total", "loop_calls", "loop_total", "write_bytes"):
                del totals[extra]
        statements = []
        for (statement, operation), totals, sites in items:
            callers: dict[tuple[str, str], list[float]] = {}
            for site, (calls, total) in sites.items():
                slot = callers.setdefault(frames.describe(site), [0, 0.0])
                slot[0] += calls
                slot[1] += total
            top = sorted(callers.items(), key=lambda kv: kv[1][1], reverse=True)[:TOP_CALLERS]
            statements.append({
                "statement": statement, "operation": operation, **totals,
                "callers": [{"where": w, "via": v, "calls": int(c), "total": t}
                            for (w, v), (c, t) in top],
            })
        statements.sort(key=lambda s: s["total"], reverse=True)
        return {"operations": operations, "statements": statements}


SUMMED = ("calls", "total", "rows", "fetch_total", "loop_calls", "loop_total", "write_bytes")


def empty_totals() -> dict[str, Any]:
    return {"calls": 0, "total": 0.0, "max": 0.0, "min": 0.0, "rows": 0}


def merge_totals(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Add `other`'s counts and times to `into`; keep the larger max and smaller min.

    Fields an older snapshot lacks (fetch_total, loop_calls, ...) are left out, not invented."""
    if other["calls"]:
        into["min"] = other["min"] if not into["calls"] else min(into["min"], other["min"])
    into["max"] = max(into["max"], other["max"])
    for key in SUMMED:
        if key in other:
            into[key] = into.get(key, 0) + other[key]


STATS = QueryStats()
# Fetches recorded from finalizers wait here: __del__ may run inside record() or snapshot()
# (garbage collection), where touching the tallies could resize a dict that is being iterated.
_deferred: list[tuple[Any, ...]] = []


def _on_loop() -> bool:
    return loops.on_loop()


def caller(frame: Any) -> Any:
    """The call site of `frame`'s stack (see harness/probes/frames.py)."""
    return frames.site(frame)


def where(key: Any) -> str:
    """`file:line function` of a call site's project frame (strings pass through)."""
    return frames.describe(key)[0]


# --- the probed classes -------------------------------------------------------------------------


# The two probes are mixins placed before the C classes (probed_class), so `super()` reaches
# sqlite3.Cursor / sqlite3.Connection, which pylint cannot see from here.
# pylint: disable=no-member


def _writes(statement: str) -> bool:
    """Whether a statement may write (its bytes are then measured): not a plain SELECT."""
    head = statement[:7].upper()
    return not (head.startswith("SELECT") or head.startswith("WITH") or head.startswith("PRAGMA"))


def _timed(method: Any, args: tuple, measure_io: bool) -> tuple[Any, float, int]:
    """Call `method(*args)`; its result, seconds, and the bytes this thread wrote meanwhile."""
    before = diskio.thread_written() if measure_io else None
    start = _perf()
    result = method(*args)
    elapsed = _perf() - start
    written = 0
    if before is not None:
        after = diskio.thread_written()
        written = after - before if after is not None and after > before else 0
    return result, elapsed, written


class _CursorProbe:
    """Mixed in before a sqlite3.Cursor class: times statements and fetches."""

    _probe_statement = UNKNOWN
    _probe_operation = "execute"
    _probe_site: Any = "<unknown>"
    _probe_iter_time = 0.0
    _probe_iter_rows = 0
    _probe_iterating = False

    def _probe_run(self, operation: str, method: Any, sql: Any, args: tuple) -> Any:
        self._probe_flush()
        statement = normalise(sql)
        site = caller(sys._getframe(2))
        self._probe_statement, self._probe_operation, self._probe_site = statement, operation, site
        measure = diskio.ENABLED and _writes(statement)
        start = _perf()
        try:
            result, elapsed, written = _timed(method, (sql,) + args, measure)
        except BaseException:
            elapsed, written = _perf() - start, 0
            self._probe_record(statement, operation, elapsed, written, site)
            raise
        self._probe_record(statement, operation, elapsed, written, site)
        return result

    def _probe_record(self, statement: str, operation: str, elapsed: float, written: int,
                      site: Any) -> None:
        try:  # never let the probe replace the subject's own result or exception
            rows = self.rowcount  # type: ignore[attr-defined]
            on_loop = _on_loop()
            STATS.record(statement, operation, elapsed, rows if rows > 0 else 0, site,
                         on_loop, written)
            if written:
                connection = self.connection  # type: ignore[attr-defined]
                diskio.database_written(written, getattr(connection, "_probe_database", ""))
            if on_loop:
                loops.BLOCKING.record("sqlite", elapsed, written, site)
        except Exception:
            pass

    def execute(self, sql, *args):
        return self._probe_run("execute", super().execute, sql, args)

    def executemany(self, sql, *args):
        return self._probe_run("executemany", super().executemany, sql, args)

    def executescript(self, sql, *args):
        return self._probe_run("executescript", super().executescript, sql, args)

    def _probe_fetch(self, operation: str, result: Any, elapsed: float) -> Any:
        try:
            rows = (0 if result is None else 1) if operation == "fetchone" else len(result)
            on_loop = _on_loop()
            STATS.fetched(self._probe_statement, self._probe_operation, operation, elapsed, rows,
                          self._probe_site, on_loop)
            if on_loop:
                loops.BLOCKING.add_time("sqlite", elapsed)
        except Exception:
            pass
        return result

    def fetchone(self):
        start = _perf()
        result = super().fetchone()
        return self._probe_fetch("fetchone", result, _perf() - start)

    def fetchall(self):
        start = _perf()
        result = super().fetchall()
        return self._probe_fetch("fetchall", result, _perf() - start)

    def fetchmany(self, *args, **kwargs):
        start = _perf()
        result = super().fetchmany(*args, **kwargs)
        return self._probe_fetch("fetchmany", result, _perf() - start)

    def __iter__(self):
        return self

    def __next__(self):
        # One "iterate" fetch per pass over the cursor, not one per row: a loop is one fetch.
        self._probe_iterating = True
        start = _perf()
        try:
            row = super().__next__()
        except StopIteration:
            self._probe_iter_time += _perf() - start
            self._probe_flush()
            raise
        self._probe_iter_time += _perf() - start
        self._probe_iter_rows += 1
        return row

    def _probe_flush(self, deferred: bool = False) -> None:
        if self._probe_iterating:
            entry = (self._probe_statement, self._probe_operation, "iterate",
                     self._probe_iter_time, self._probe_iter_rows, self._probe_site)
            self._probe_iter_time, self._probe_iter_rows, self._probe_iterating = 0.0, 0, False
            if deferred:
                _deferred.append(entry)
            else:
                STATS.fetched(*entry, on_loop=_on_loop())

    def close(self):
        self._probe_flush()
        return super().close()

    def __del__(self):
        try:
            self._probe_flush(deferred=True)
        except Exception:
            pass


class _ConnectionProbe:
    """Mixed in before a sqlite3.Connection class: probed cursors, timed commit and rollback."""

    __slots__ = ()

    def cursor(self, factory=None):
        if factory is None:
            factory = ProbedCursor
        elif isinstance(factory, type) and issubclass(factory, sqlite3.Cursor):
            factory = probed_class(factory, _CursorProbe)
        return super().cursor(factory)

    # The C execute methods make a plain cursor without calling self.cursor(), so redo them here
    # (the documented behaviour: a new cursor, its method called, the cursor returned).
    def execute(self, sql, *args):
        cursor = self.cursor()
        cursor.execute(sql, *args)
        return cursor

    def executemany(self, sql, *args):
        cursor = self.cursor()
        cursor.executemany(sql, *args)
        return cursor

    def executescript(self, sql, *args):
        cursor = self.cursor()
        cursor.executescript(sql, *args)
        return cursor

    def _probe_end(self, operation: str, method: Any, *args: Any) -> Any:
        site = caller(sys._getframe(2))
        start = _perf()
        try:
            result, elapsed, written = _timed(method, args, diskio.ENABLED)
        except BaseException:
            self._probe_ended(operation, _perf() - start, 0, site)
            raise
        self._probe_ended(operation, elapsed, written, site)
        return result

    def _probe_ended(self, operation: str, elapsed: float, written: int, site: Any) -> None:
        try:
            on_loop = _on_loop()
            STATS.record(operation.upper(), operation, elapsed, 0, site, on_loop, written)
            if written:
                diskio.database_written(written, getattr(self, "_probe_database", ""))
            if on_loop:
                loops.BLOCKING.record("sqlite", elapsed, written, site)
        except Exception:
            pass

    def commit(self):
        return self._probe_end("commit", super().commit)

    def rollback(self):
        return self._probe_end("rollback", super().rollback)

    def __exit__(self, exc_type, exc, tb):
        # `with connection:` commits or rolls back in C without calling self.commit().
        operation = "commit" if exc_type is None else "rollback"
        return self._probe_end(operation, super().__exit__, exc_type, exc, tb)


_classes: dict[tuple[type, type], type] = {}


def probed_class(base: type, probe: type) -> type:
    """`base` with the probe mixed in before it (cached; `base` itself if already probed)."""
    if issubclass(base, probe):
        return base
    key = (base, probe)
    cls = _classes.get(key)
    if cls is None:
        cls = _classes[key] = type(f"Probed{base.__name__}", (probe, base), {})
        cls.__module__ = base.__module__
    return cls


ProbedCursor = probed_class(sqlite3.Cursor, _CursorProbe)
ProbedConnection = probed_class(sqlite3.Connection, _ConnectionProbe)

# connect(database, timeout, detect_types, isolation_level, check_same_thread, factory, ...)
_FACTORY_POSITION = 5
_originals: dict[str, Any] = {}


def _wrap_connect(original: Any) -> Any:
    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        if len(args) > _FACTORY_POSITION:
            factory = args[_FACTORY_POSITION]
        else:
            factory = kwargs.get("factory", sqlite3.Connection)
        if isinstance(factory, type) and issubclass(factory, sqlite3.Connection):
            probed = probed_class(factory, _ConnectionProbe)
            if len(args) > _FACTORY_POSITION:
                args = args[:_FACTORY_POSITION] + (probed,) + args[_FACTORY_POSITION + 1:]
            else:
                kwargs["factory"] = probed
        connection = original(*args, **kwargs)
        try:
            database = args[0] if args else kwargs.get("database")
            path = diskio.database_opened(database)
            if path and isinstance(connection, _ConnectionProbe):
                connection._probe_database = path  # type: ignore[attr-defined]
        except Exception:
            pass
        return connection

    connect.__perf_probe__ = True  # type: ignore[attr-defined]
    return connect


def install() -> None:
    """Make sqlite3.connect (also when imported later by name) return probed connections."""
    frames.hide(sqlite3.__file__)
    if getattr(sqlite3.connect, "__perf_probe__", False):
        return
    _originals["connect"] = sqlite3.connect
    probed = _wrap_connect(sqlite3.connect)
    sqlite3.connect = probed
    sqlite3.dbapi2.connect = probed


def uninstall() -> None:
    """Restore sqlite3.connect (connections already open stay probed)."""
    original = _originals.pop("connect", None)
    if original is not None:
        sqlite3.connect = original
        sqlite3.dbapi2.connect = original
