"""Injection of the probes into a subject's environment, and collection of what they wrote."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.experiment import Probes
from harness.files import atomic_write_json
from harness.probes import agent
from harness.probes.breakdown import merge_blocking, merge_files, merge_sqlite
from harness.probes.writer import FLUSH, MARK

BOOT_DIR = Path(__file__).resolve().parent / "boot"
EXPECTED = "expected.json"  # written by probe_environment: which probes the subject should run
# what a probed start writes: one file per process and probe, and the warm-up's end
WRITTEN = ("hook-*.json", "sqlite-*.json", "loop_lag-*.json", "warnings-*.json", "blocking-*.json",
           "files-*.json", "measuring-*.json", MARK, "flushed-*.json", FLUSH)
MARK_TIMEOUT = 3.0  # seconds to wait for every probed process to start measuring afresh


_NO_HOOK_FLAGS = set("IES")  # -I, -E, -S: the interpreter would skip PYTHONPATH or site
_PIP_LAUNCHER = "'" * 3 + "exec' "  # pip's sh launcher for long interpreter paths, second line


def _shebang(path: str) -> list[str] | None:
    """The interpreter and arguments a script's first line names (None when not a script)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    words = lines[0][2:].split()
    if words and Path(words[0]).name == "env":  # `#!/usr/bin/env [-S] [VAR=x] python3 ...`
        words = words[1:]
        while words and (words[0].startswith("-") or "=" in words[0]):
            words = words[1:]
    if (words and Path(words[0]).name in ("sh", "bash") and len(lines) > 1
            and lines[1].startswith(_PIP_LAUNCHER)):
        words = [w.strip('"') for w in lines[1][len(_PIP_LAUNCHER):].split()[:1]]
    return words or None


def _is_python_name(name: str) -> bool:
    return Path(name).name.lower().startswith(("python", "pypy"))


def is_python_command(command: tuple[str, ...] | list[str], python: str,
                      declared: bool | None = None) -> bool:
    """Whether a subject command starts a Python interpreter the probes can hook into.

    True for `{python}` / the harness's interpreter / `python*` / `pypy*`, and for a script whose
    shebang runs one (console scripts such as `datasette serve`, pip's entry points) unless it
    passes -I, -E or -S, which skip PYTHONPATH or site (the probes' startup hook).
    `declared` (`[subject] python`) overrides the guess.
    """
    if declared is not None:
        return declared
    first = command[0] if command else ""
    if first in ("{python}", python) or _is_python_name(first):
        return True
    if not first or "{" in first:
        return False
    path = first if os.sep in first or (os.altsep and os.altsep in first) else shutil.which(first)
    words = _shebang(path) if path else None
    if not words or not _is_python_name(words[0]):
        return False
    flags = {c for w in words[1:] if w.startswith("-") and not w.startswith("--") for c in w[1:]}
    return not flags & _NO_HOOK_FLAGS


def enabled(probes: Probes) -> list[str]:
    """Names of the in-process probes an experiment enables (resources are sampled from outside)."""
    wanted = (("sqlite", probes.sqlite), ("loop_lag", probes.loop_lag),
              ("blocking", probes.blocking), ("files", probes.files))
    return [name for name, on in wanted if on]


def unprobed_warning(names: list[str]) -> str:
    """The sentence for a subject the enabled probes cannot be injected into."""
    return (f"probes {', '.join(names)} need a Python subject, and the subject command does not "
            f"start a Python interpreter the probes can hook into (or its shebang passes -I, -E "
            f"or -S, which skip the startup hook), so it runs unprobed; set `python = true` "
            f"under [subject] if it is one, start it as `{{python}} -m ...`, or switch these "
            f"probes off.")


def injection_warning(probes: Probes, command: tuple[str, ...], python: str,
                      declared: bool | None, variables: dict[str, str]) -> str | None:
    """For `harness validate`: the warning a run would give because probes cannot be injected."""
    names = enabled(probes)
    if not names:
        return None
    first = command[0] if command else ""
    for key, value in variables.items():
        first = first.replace("{" + key + "}", value)
    if is_python_command((first, *command[1:]), python, declared):
        return None
    return unprobed_warning(names)


def probe_environment(
    probes: Probes, *, data_dir: Path, base_env: dict[str, str], is_python: bool,
    state_dir: Path | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The subject's environment with the startup hook first on PYTHONPATH, and warnings.

    `state_dir` (the instance's state directory; default: `state` beside `data_dir`, the
    instance layout of harness.subject) lets the file probe tell state files apart;
    relative `[probes] project_roots` are resolved in the subject, against its working directory.
    """
    env = dict(base_env)
    names = enabled(probes)
    if not names:
        return env, []
    if not is_python:
        return env, [unprobed_warning(names)]
    data_dir = Path(data_dir).resolve()
    for pattern in WRITTEN:  # a reused directory must not mix an earlier start's data in
        for stale in data_dir.glob(pattern):
            stale.unlink()
    atomic_write_json(data_dir / EXPECTED, {"probes": names})
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(BOOT_DIR) + (os.pathsep + path if path else "")
    env[agent.ENV_PROBES] = ",".join(names)
    env[agent.ENV_DIR] = str(data_dir)
    env[agent.ENV_LOOP_LAG_INTERVAL] = repr(float(probes.loop_lag_interval))
    env[agent.ENV_FLUSH_INTERVAL] = repr(float(probes.flush_interval))
    if probes.project_roots:
        env[agent.ENV_PROJECT_ROOTS] = os.pathsep.join(probes.project_roots)
    if probes.skip_modules:
        env[agent.ENV_SKIP_MODULES] = ",".join(probes.skip_modules)
    if probes.project_modules:
        env[agent.ENV_PROJECT_MODULES] = ",".join(probes.project_modules)
    if state_dir is None and (data_dir.parent / "state").is_dir():
        state_dir = data_dir.parent / "state"
    if state_dir is not None:
        env[agent.ENV_STATE_DIR] = str(Path(state_dir).resolve())
    return env, []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def mark_measuring(data_dirs: Iterable[Path], timeout: float = MARK_TIMEOUT) -> list[str]:
    """Tell the probed processes under `data_dirs` that the warm-up is over: each starts its
    counts from zero, so per-request figures cover the measured requests only.

    Waits (up to `timeout`) until every live probed process has answered; returns warnings for
    those that did not (their counts then include the warm-up). Directories without probes are
    left alone.
    """
    waiting = {directory: _ask(directory, MARK, "measuring")
               for directory in (Path(d) for d in data_dirs)
               if any(directory.glob("hook-*.json"))}
    return [f"probes: process {pid} ({directory}) did not start measuring afresh within "
            f"{timeout:g} s, so its counts include the warm-up." for directory, pids in
            _await_answers(waiting, "measuring", timeout).items() for pid in sorted(pids)]


def flush_probes(data_dir: Path, timeout: float = MARK_TIMEOUT) -> list[str]:
    """Have every live probed process under `data_dir` write its counts so far, now; waits (up
    to `timeout`) for each to say so and returns warnings for those that did not."""
    directory = Path(data_dir)
    waiting = {directory: _ask(directory, FLUSH, "flushed")}
    return [f"probes: process {pid} ({directory}) did not write its counts within {timeout:g} s "
            f"of being asked; they are left out."
            for pid in sorted(_await_answers(waiting, "flushed", timeout)[directory])]


def _pids(directory: Path, prefix: str) -> set[int]:
    """The process ids named by `directory`'s PREFIX-PID.json files."""
    pids = set()
    for path in directory.glob(f"{prefix}-*.json"):
        try:
            pids.add(int(path.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return pids


def _ask(directory: Path, request: str, answer: str) -> set[int]:
    """Write the request file (atomically, a rename: a half-written request seen twice would be
    acted on twice) after clearing earlier answers; the live probed processes to wait for."""
    pids = _pids(directory, "hook")  # the processes probed when asked
    for stale in directory.glob(f"{answer}-*.json"):
        stale.unlink()
    atomic_write_json(directory / request, {"at": time.time()})  # a new file: a new stamp
    return {pid for pid in pids if _alive(pid)}


def _await_answers(waiting: dict[Path, set[int]], answer: str,
                   timeout: float) -> dict[Path, set[int]]:
    """Wait (up to `timeout`) until each process has written its ANSWER-PID.json or died; the
    processes that did neither, per directory."""
    end = time.monotonic() + timeout
    while True:
        for directory, pids in waiting.items():
            pids.difference_update(_pids(directory, answer))
            pids.intersection_update({pid for pid in pids if _alive(pid)})
        if not any(waiting.values()) or time.monotonic() >= end:
            return waiting
        time.sleep(0.02)


def _read(path: Path, warnings: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warnings.append(f"{path}: probe data cannot be read ({exc}); it is left out.")
        return None


def _busiest(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The loop-lag data of the process whose loop ran longest (the server, not a helper)."""
    parts = [p for p in parts if isinstance(p, dict) and p.get("samples")]
    return max(parts, key=lambda p: len(p["samples"])) if parts else None


def collect_probe_data(data_dir: Path) -> dict[str, Any]:
    """What the probes wrote under `data_dir`, merged over the subject's processes.

    Keys: "sqlite" and "loop_lag" (shapes in harness/probes/__init__.py) when there is data, and
    "warnings" (a list of sentences for Round.warnings) when something went wrong, including the
    case where probes were enabled but no process loaded them.
    """
    data_dir = Path(data_dir)
    warnings: list[str] = []
    out: dict[str, Any] = {}
    expected = _read(data_dir / EXPECTED, warnings) if (data_dir / EXPECTED).exists() else None
    names = list(expected.get("probes", [])) if isinstance(expected, dict) else []
    if names and not any(data_dir.glob("hook-*.json")):
        warnings.append(
            f"probes {', '.join(names)} were enabled but no Python process of the subject loaded "
            f"them (it may not be Python, or it ignores PYTHONPATH, e.g. `python -I` or `-E`), "
            f"so it ran unprobed."
        )
    always = [n for n in names if n in ("sqlite", "blocking", "files")]  # written at every exit
    for ack in sorted(data_dir.glob("measuring-*.json")):
        pid = ack.stem.split("-", 1)[1]
        if always and not any((data_dir / f"{n}-{pid}.json").exists() for n in always):
            warnings.append(
                f"probes: process {pid} wrote no probe data after the warm-up (it was probably "
                f"killed before its exit flush: see stop_timeout under [subject]); its "
                f"measured requests are not in the probe data."
            )
    for path in sorted(data_dir.glob("warnings-*.json")):
        found = _read(path, warnings)
        warnings.extend(f"probe: {w}" for w in (found or []) if f"probe: {w}" not in warnings)
    sqlite = merge_sqlite(_read(p, warnings) for p in sorted(data_dir.glob("sqlite-*.json")))
    if sqlite is not None:
        out["sqlite"] = sqlite
    for name, merge in (("blocking", merge_blocking), ("files", merge_files)):
        merged = merge(_read(p, warnings) for p in sorted(data_dir.glob(f"{name}-*.json")))
        if merged is not None:
            out[name] = merged
    lag = _busiest([_read(p, warnings) for p in sorted(data_dir.glob("loop_lag-*.json"))])
    if lag is not None:
        out["loop_lag"] = lag
    elif "loop_lag" in names and any(data_dir.glob("hook-*.json")):
        warnings.append(
            "loop_lag: no event loop was seen running (the probe follows asyncio's standard "
            "loops and the Twisted reactor; uvloop and other loops are not measured)."
        )
    if warnings:
        out["warnings"] = warnings
    return out
