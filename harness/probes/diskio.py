"""Where the bytes went: file reads and writes attributed to files, by kind.

Runs inside the subject, standard library only. Two honest sources, nothing estimated:

* Python file objects: `open` (builtins.open and io.open, hence pathlib too) is replaced by one
  that builds the same object from a FileIO subclass, so every read and write that reaches the OS
  is counted with its bytes against the file's path. File descriptors opened elsewhere (os.open,
  os.fdopen of an int, C extensions) are not seen here.
* SQLite (C code, not seen by Python): the SQLite probe reads this thread's `wchar` from
  /proc/thread-self/io before and after every statement that may write and every COMMIT, and
  charges the difference to the connection's database file (the database, its journal and WAL:
  one kind). Linux only; elsewhere database bytes are not measured (`database_measured` false).

The process's own total (`/proc/self/io` wchar/rchar since the start of measuring) is recorded
beside, so what no file accounts for (sockets, pipes, other C code) is shown as a remainder
rather than hidden. The probes' own output (PERF_PROBE_DIR) is never counted.

Kinds: "database" (a file SQLite opened, or named *.db, *.sqlite, *.sqlite3, with -wal, -journal,
-shm), "log" (*.log, *.log.N, or under a folder named log or logs), "state" (under the subject's
state directory, PERF_PROBE_STATE_DIR), "other" (anywhere else).

Snapshot (Round.probes["files"]):

    {"files": [{"path", "kind", "read_bytes", "write_bytes", "reads", "writes"}],
     "process": {"read_bytes", "write_bytes"} | None,     # the whole process, since measuring
     "probe_bytes": n,                                    # the probes' own output, left out
     "database_measured": bool}
"""

from __future__ import annotations

import builtins
import io
import os
import sys
import threading
import time
from typing import Any

from . import frames, loops

ENABLED = False  # set by install(); the SQLite probe measures database bytes only then
MAX_FILES = 2000  # beyond this, files are folded into one row per kind
_perf = time.perf_counter
_get_ident = threading.get_ident
_original_open = io.open
_local = threading.local()


class _Where:
    probe_dir = ""
    state_dir = ""


# --- the bytes a thread or the process has written ----------------------------------------------


def _proc_counters(path: str) -> tuple[int, int] | None:
    """(rchar, wchar) from a /proc io file, or None where there is none."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 1024).decode("ascii", "replace")
    finally:
        os.close(fd)
    values = {}
    for line in text.splitlines():
        name, _, number = line.partition(":")
        values[name.strip()] = number.strip()
    try:
        return int(values["rchar"]), int(values["wchar"])
    except (KeyError, ValueError):
        return None


def thread_written() -> int | None:
    """Bytes the calling thread has passed to write calls so far (Linux), or None."""
    found = _proc_counters("/proc/thread-self/io")
    return None if found is None else found[1]


# --- kinds of files -------------------------------------------------------------------------------

_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")
_DB_COMPANIONS = ("-wal", "-journal", "-shm")


def _under(path: str, folder: str) -> bool:
    return bool(folder) and (path == folder or path.startswith(folder.rstrip(os.sep) + os.sep))


def kind_of(path: str, databases: set[str]) -> str:
    base = path
    for companion in _DB_COMPANIONS:
        if base.endswith(companion):
            base = base[: -len(companion)]
            break
    if base in databases or base.lower().endswith(_DB_SUFFIXES):
        return "database"
    name = os.path.basename(path).lower()
    parts = [p.lower() for p in path.split(os.sep)[:-1]]
    if name.endswith(".log") or ".log." in name or "log" in parts or "logs" in parts:
        return "log"
    if _under(path, _Where.state_dir):
        return "state"
    return "other"


def shown(path: str) -> str:
    """A file's name in the report: relative to the state directory or the project, if under."""
    if _under(path, _Where.state_dir):
        return os.path.relpath(path, _Where.state_dir).replace(os.sep, "/")
    for root in frames.Config.roots:
        if path.startswith(root):
            return path[len(root):].replace(os.sep, "/")
    return path.replace(os.sep, "/")


class FileStats:
    """Thread-safe byte counts per file."""

    def __init__(self) -> None:
        self.databases: set[str] = set()  # absolute paths SQLite opened
        self.probe_bytes = 0
        self.reset()

    def reset(self) -> None:
        self._lock = threading.RLock()
        self._files: dict[str, list[int]] = {}  # absolute path -> [rbytes, wbytes, reads, writes]
        self._start = _proc_counters("/proc/self/io")
        self.probe_bytes = 0

    def add(self, path: str, nbytes: int, write: bool) -> None:
        with self._lock:
            slot = self._files.get(path)
            if slot is None:
                if len(self._files) >= MAX_FILES:
                    path = "<more files>"
                slot = self._files.setdefault(path, [0, 0, 0, 0])
            slot[1 if write else 0] += nbytes
            slot[3 if write else 2] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            files = {path: list(slot) for path, slot in self._files.items()}
        rows: list[dict[str, Any]] = [
            {"path": shown(path), "kind": kind_of(path, self.databases), "read_bytes": r,
             "write_bytes": w, "reads": nr, "writes": nw}
            for path, (r, w, nr, nw) in files.items()]
        rows.sort(key=lambda row: (-row["write_bytes"], -row["read_bytes"], row["path"]))
        process = None
        now = _proc_counters("/proc/self/io")
        if now is not None and self._start is not None:
            process = {"read_bytes": now[0] - self._start[0],
                       "write_bytes": now[1] - self._start[1]}
        return {"files": rows, "process": process, "probe_bytes": self.probe_bytes,
                "database_measured": thread_written() is not None}


FILES = FileStats()


def database_opened(database: Any) -> str:
    """Remember a file SQLite connected to (its writes are charged to it); its path or ""."""
    if isinstance(database, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(database))
        if path.startswith("file:"):  # a URI: the path part
            path = path[5:].split("?", 1)[0]
        if path and path != ":memory:" and "mode=memory" not in str(database):
            path = os.path.abspath(path)
            FILES.databases.add(path)
            return path
    return ""


def database_written(nbytes: int, database: str = "") -> None:
    """Bytes SQLite wrote during one statement or commit (database, journal and WAL)."""
    FILES.add(database or "<sqlite databases>", nbytes, True)


def probe_output(nbytes: int) -> None:
    """Bytes the probes wrote themselves (reported, never counted as the subject's)."""
    FILES.probe_bytes += nbytes


# --- the probed file objects ----------------------------------------------------------------------


class _ProbedFileIO(io.FileIO):
    """io.FileIO counting the bytes of every read and write against its path."""

    _probe_path = ""

    def _probe_count(self, nbytes: Any, write: bool, start: float) -> None:
        try:
            n = nbytes if isinstance(nbytes, int) else (len(nbytes) if nbytes else 0)
            FILES.add(self._probe_path, n, write)
            if _get_ident() in loops._loop_threads:
                site = frames.site(sys._getframe(2))
                loops.BLOCKING.record("file_write" if write else "file_read", _perf() - start,
                                      n, site)
        except Exception:
            pass

    def read(self, size=-1):
        start = _perf()
        data = super().read(size)
        self._probe_count(data, False, start)
        return data

    def readall(self):
        start = _perf()
        data = super().readall()
        self._probe_count(data, False, start)
        return data

    def readinto(self, buffer):
        start = _perf()
        n = super().readinto(buffer)
        self._probe_count(n, False, start)
        return n

    def write(self, data):
        start = _perf()
        n = super().write(data)
        self._probe_count(n, True, start)
        return n


def _simple_mode(mode: Any) -> bool:
    if not isinstance(mode, str) or not set(mode) <= set("rwxabt+") or len(set(mode)) != len(mode):
        return False
    return sum(c in mode for c in "rwxa") == 1 and not ("b" in mode and "t" in mode)


def probed_open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
                closefd=True, opener=None):
    """io.open, built from a counting FileIO (anything unusual goes to the real io.open)."""
    binary = isinstance(mode, str) and "b" in mode
    if (getattr(_local, "off", False) or not isinstance(file, (str, bytes, os.PathLike))
            or not _simple_mode(mode) or not isinstance(buffering, int)
            or (binary and (encoding is not None or errors is not None or newline is not None))
            or (not binary and buffering == 0)):
        return _original_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
    path = os.path.abspath(os.fsdecode(os.fspath(file)))
    if _under(path, _Where.probe_dir):
        return _original_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
    raw = _ProbedFileIO(file, "".join(c for c in mode if c in "rwxa+"), closefd, opener=opener)
    try:
        raw._probe_path = path
        line_buffering = False
        if buffering == 1 or (buffering < 0 and raw.isatty()):
            buffering, line_buffering = -1, not binary
        if buffering < 0:
            try:
                size = os.fstat(raw.fileno()).st_blksize
            except (OSError, AttributeError):
                size = 0
            buffering = size if size > 1 else io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            return raw
        if "+" in mode:
            buffer: Any = io.BufferedRandom(raw, buffering)
        elif "r" in mode:
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = io.BufferedWriter(raw, buffering)
        if binary:
            return buffer
        text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
        text.mode = mode  # type: ignore[misc]
        return text
    except BaseException:
        raw.close()
        raise


class suspended:
    """Within this block the calling thread's opens are not counted (the probes' own files)."""

    def __enter__(self) -> None:
        _local.off = True

    def __exit__(self, *exc: Any) -> None:
        _local.off = False


def install(probe_dir: str, state_dir: str, database: bool = True) -> None:
    """Count Python-level file I/O from now on, and SQLite's writes if `database` (the blocking
    probe needs the former only: file calls on the loop)."""
    global ENABLED
    _Where.probe_dir = os.path.abspath(probe_dir) if probe_dir else ""
    _Where.state_dir = os.path.abspath(state_dir) if state_dir else ""
    ENABLED = ENABLED or database
    if getattr(builtins.open, "__perf_probe__", False):
        return
    probed_open.__perf_probe__ = True  # type: ignore[attr-defined]
    probed_open.__doc__ = _original_open.__doc__
    builtins.open = probed_open
    io.open = probed_open
