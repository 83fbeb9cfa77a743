"""The probes' agent inside the subject: reads its configuration from the environment, installs.

Started by harness/probes/boot/sitecustomize.py; standard library only. The environment variables
below are the whole interface between the harness (harness.probes.inject) and the subject.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from . import imports

ENV_PROBES = "PERF_PROBES"  # comma-separated: sqlite, loop_lag
ENV_DIR = "PERF_PROBE_DIR"  # where each process writes NAME-PID.json
ENV_LOOP_LAG_INTERVAL = "PERF_PROBE_LOOP_LAG_INTERVAL"  # seconds between lag ticks (0.1)
ENV_FLUSH_INTERVAL = "PERF_PROBE_FLUSH_INTERVAL"  # seconds between periodic writes (1.0)
KNOWN_PROBES = ("sqlite", "loop_lag")
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
        from . import sqlite

        sqlite.install()
        return sqlite.STATS
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
    from .writer import ProbeWriter

    problems: list[str] = []
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
