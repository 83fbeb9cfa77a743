"""The probes' agent inside the subject: reads its configuration from the environment, installs.

Started by harness/probes/boot/sitecustomize.py; standard library only. The environment variables
below are the whole interface between the harness (harness.probes.inject) and the subject.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from . import imports

ENV_PROBES = "PERF_PROBES"  # comma-separated: sqlite, loop_lag, blocking, files
ENV_DIR = "PERF_PROBE_DIR"  # where each process writes NAME-PID.json
ENV_LOOP_LAG_INTERVAL = "PERF_PROBE_LOOP_LAG_INTERVAL"  # seconds between lag ticks (0.1)
ENV_FLUSH_INTERVAL = "PERF_PROBE_FLUSH_INTERVAL"  # seconds between periodic writes (1.0)
ENV_PROJECT_ROOTS = "PERF_PROBE_PROJECT_ROOTS"  # os.pathsep-separated; default: the cwd
ENV_SKIP_MODULES = "PERF_PROBE_SKIP_MODULES"  # comma-separated module prefixes never named
ENV_PROJECT_MODULES = "PERF_PROBE_PROJECT_MODULES"  # comma-separated prefixes: the project
ENV_STATE_DIR = "PERF_PROBE_STATE_DIR"  # the subject's state directory (file kinds)
KNOWN_PROBES = ("sqlite", "loop_lag", "blocking", "files")
DEFAULTS = {ENV_LOOP_LAG_INTERVAL: 0.1, ENV_FLUSH_INTERVAL: 1.0}


def _seconds(environ: Any, name: str, problems: list[str]) -> float:
    text = environ.get(name, "")
    if not text:
        return DEFAULTS[name]
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value > 0:
        return value
    problems.append(f"{name}={text!r} is not a positive number of seconds; using {DEFAULTS[name]}")
    return DEFAULTS[name]


def _install(name: str, environ: Any, problems: list[str]) -> Any:
    if name == "sqlite":
        from . import loops, sqlite

        loops.track_loops()  # statements on the loop thread are marked as such
        sqlite.install()
        return sqlite.STATS
    if name == "blocking":
        from . import diskio, loops, sqlite

        loops.install()
        sqlite.install()  # statements on the loop are counted by the SQLite wrappers
        # file calls on the loop are counted by the file wrappers
        diskio.install(environ.get(ENV_DIR, ""), environ.get(ENV_STATE_DIR, ""), database=False)
        return loops.BLOCKING
    if name == "files":
        from . import diskio, sqlite

        diskio.install(environ.get(ENV_DIR, ""), environ.get(ENV_STATE_DIR, ""))
        sqlite.install()  # SQLite's own writes are measured by the SQLite wrappers
        return diskio.FILES
    from . import looplag

    recorder = looplag.LagRecorder(_seconds(environ, ENV_LOOP_LAG_INTERVAL, problems))
    looplag.install(recorder)
    return recorder


def start(environ: Any = None) -> Any:
    """Install the configured probes and start their writer; None when no probe dir is set."""
    environ = os.environ if environ is None else environ
    directory = environ.get(ENV_DIR)
    if not directory:
        return None
    from . import frames, handoff
    from .writer import ProbeWriter

    roots = [r for r in environ.get(ENV_PROJECT_ROOTS, "").split(os.pathsep) if r]
    skip = [m for m in environ.get(ENV_SKIP_MODULES, "").split(",") if m.strip()]
    own = [m for m in environ.get(ENV_PROJECT_MODULES, "").split(",") if m.strip()]
    frames.configure(roots, skip, own)
    problems: list[str] = []
    if any(n in environ.get(ENV_PROBES, "") for n in ("sqlite", "blocking", "files")):
        try:  # statements run by worker threads keep the caller that queued them
            handoff.install()
        except Exception as exc:
            problems.append(f"callers of handed-off work not followed: {exc}")
    writer = ProbeWriter(directory, _seconds(environ, ENV_FLUSH_INTERVAL, problems), {})
    imports.on_error = writer.warn
    for name in [n.strip() for n in environ.get(ENV_PROBES, "").split(",") if n.strip()]:
        if name not in KNOWN_PROBES:
            known = ", ".join(KNOWN_PROBES)
            problems.append(f"{ENV_PROBES}: unknown probe {name!r}; known: {known}")
            continue
        try:
            writer.sources[name] = _install(name, environ, problems)
        except Exception as exc:
            problems.append(f"{name}: probe not installed: {type(exc).__name__}: {exc}")
    for problem in problems:
        writer.warn(problem)
    writer.start({"python": sys.version.split()[0], "executable": sys.executable,
                  "probes": sorted(writer.sources)})
    if writer.warnings:
        writer.flush()
    return writer
