"""SQLite query probe: times every sqlite3 operation per normalised statement and per caller.

Runs inside the subject (loaded by harness/probes/boot/sitecustomize.py), so it imports only the
standard library. sqlite3.Connection and sqlite3.Cursor are C types whose methods cannot be
patched, so `sqlite3.connect` is wrapped to pass a Connection subclass as `factory`, and that
subclass hands out a Cursor subclass; both time the calls and then defer to the C methods.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import sys
import threading
import time
from typing import Any

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
    """Running totals of one (statement, operation), with its callers."""

    __slots__ = ("calls", "total", "max", "min", "rows", "callers")

    def __init__(self) -> None:
        self.calls = 0
        self.total = 0.0
        self.max = 0.0
        self.min = float("inf")
        self.rows = 0
        self.callers: dict[Any, list[float]] = {}  # caller key (see `caller`) -> [calls, total]

    def as_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "total": self.total, "max": self.max,
                "min": self.min if self.calls else 0.0, "rows": self.rows}


class QueryStats:
    """Thread-safe aggregation of timed sqlite3 operations."""

    def __init__(self) -> None:
        # Re-entrant: a SIGTERM handler may snapshot while the same thread is inside record().
        self._lock = threading.RLock()
        self._tallies: dict[tuple[str, str], _Tally] = {}

    def record(self, statement: str, operation: str, elapsed: float, rows: int, site: Any) -> None:
        key = (statement, operation)
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                if len(self._tallies) >= MAX_STATEMENTS:
                    key = (OTHER, operation)
                tally = self._tallies.setdefault(key, _Tally())
            tally.calls += 1
            tally.total += elapsed
            tally.rows += rows
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

    def reset(self) -> None:
        """Start from zero with a new lock (after fork, the old one may be held by a thread the
        child does not have)."""
        self._lock = threading.RLock()
        self._tallies = {}

    def snapshot(self) -> dict[str, Any]:
        """The data shape of Round.probes["sqlite"] (see harness/probes/__init__.py)."""
        while _deferred:
            self.record(*_deferred.pop())
        with self._lock:
            tallies = self._tallies.copy()  # a copy: a re-entrant record() must not resize it
            items = [(key, t.as_json(), t.callers.copy()) for key, t in tallies.items()]
        operations: dict[str, dict[str, Any]] = {}
        statements = []
        for (statement, operation), totals, sites in items:
            merge_totals(operations.setdefault(operation, empty_totals()), totals)
            callers: dict[str, list[float]] = {}
            for site, (calls, total) in sites.items():
                slot = callers.setdefault(where(site), [0, 0.0])
                slot[0] += calls
                slot[1] += total
            top = sorted(callers.items(), key=lambda kv: kv[1][1], reverse=True)[:TOP_CALLERS]
            statements.append({
                "statement": statement, "operation": operation, **totals,
                "callers": [{"where": w, "calls": int(c), "total": t} for w, (c, t) in top],
            })
        statements.sort(key=lambda s: s["total"], reverse=True)
        return {"operations": operations, "statements": statements}


def empty_totals() -> dict[str, Any]:
    return {"calls": 0, "total": 0.0, "max": 0.0, "min": 0.0, "rows": 0}


def merge_totals(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Add `other`'s calls, total and rows to `into`; keep the larger max and smaller min."""
    if other["calls"]:
        into["min"] = other["min"] if not into["calls"] else min(into["min"], other["min"])
    into["max"] = max(into["max"], other["max"])
    for key in ("calls", "total", "rows"):
        into[key] += other[key]


STATS = QueryStats()
# Records from finalizers wait here: __del__ may run inside record() or snapshot() (garbage
# collection), where touching the tallies could resize a dict that is being iterated.
_deferred: list[tuple[str, str, float, int, str]] = []

# --- where a call comes from -------------------------------------------------------------------

_SKIPPED_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep for path in (sqlite3.__file__, __file__)
)
_shown: dict[str, str] = {}
_cwd = os.getcwd()


def _display(filename: str) -> str:
    """How a source file is named in callers ("" for the probe and the sqlite3 module).

    Paths under the working directory are relative and those in site-packages start after it, so
    callers of baseline and candidate match even when they run from different checkouts.
    """
    path = os.path.abspath(filename) if not filename.startswith("<") else filename
    if path.startswith(_SKIPPED_DIRS):
        return ""
    if path.startswith(_cwd + os.sep):
        return os.path.relpath(path, _cwd).replace(os.sep, "/")
    marker = os.sep + "site-packages" + os.sep
    if marker in path:
        return path.split(marker, 1)[1].replace(os.sep, "/")
    return path


def caller(frame: Any) -> Any:
    """The first frame outside the probe and the sqlite3 module, as a cheap key (code, line);
    `where` turns it into `file:line function` when a snapshot is taken, not on every call."""
    while frame is not None:
        code = frame.f_code
        shown = _shown.get(code.co_filename)
        if shown is None:
            shown = _shown[code.co_filename] = _display(code.co_filename)
        if shown:
            return (code, frame.f_lineno)
        frame = frame.f_back
    return "<unknown>"


def where(key: Any) -> str:
    """`file:line function` of a caller key (strings pass through)."""
    if isinstance(key, str):
        return key
    code, line = key
    name = getattr(code, "co_qualname", code.co_name)
    return f"{_shown.get(code.co_filename) or code.co_filename}:{line} {name}"


# --- the probed classes -------------------------------------------------------------------------


# The two probes are mixins placed before the C classes (probed_class), so `super()` reaches
# sqlite3.Cursor / sqlite3.Connection, which pylint cannot see from here.
# pylint: disable=no-member


class _CursorProbe:
    """Mixed in before a sqlite3.Cursor class: times statements and fetches."""

    _probe_statement = UNKNOWN
    _probe_iter_time = 0.0
    _probe_iter_rows = 0
    _probe_iter_where: Any = ""

    def _probe_run(self, operation: str, method: Any, sql: Any, args: tuple) -> Any:
        self._probe_flush()
        statement = normalise(sql)
        self._probe_statement = statement
        start = _perf()
        try:
            return method(sql, *args)
        finally:
            elapsed = _perf() - start
            try:  # never let the probe replace the subject's own result or exception
                rows = self.rowcount  # type: ignore[attr-defined]
                STATS.record(statement, operation, elapsed, rows if rows > 0 else 0,
                             caller(sys._getframe(2)))
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
            STATS.record(self._probe_statement, operation, elapsed, rows, caller(sys._getframe(2)))
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
        # One "iterate" call per pass over the cursor, not one per row: a loop is one fetch.
        if not self._probe_iter_where:
            self._probe_iter_where = caller(sys._getframe(1))
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

    def _probe_flush(self, record: Any = None) -> None:
        if self._probe_iter_where:
            (record or STATS.record)(self._probe_statement, "iterate", self._probe_iter_time,
                                     self._probe_iter_rows, self._probe_iter_where)
            self._probe_iter_time, self._probe_iter_rows, self._probe_iter_where = 0.0, 0, ""

    def close(self):
        self._probe_flush()
        return super().close()

    def __del__(self):
        try:
            self._probe_flush(lambda *entry: _deferred.append(entry))
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
        start = _perf()
        try:
            return method(*args)
        finally:
            try:
                elapsed = _perf() - start
                STATS.record(operation.upper(), operation, elapsed, 0, caller(sys._getframe(2)))
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
        return original(*args, **kwargs)

    connect.__perf_probe__ = True  # type: ignore[attr-defined]
    return connect


def install() -> None:
    """Make sqlite3.connect (also when imported later by name) return probed connections."""
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
