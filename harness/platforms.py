"""Agent platform profiles: an explicit registry read from platforms/*.toml on request."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SHELLS = ("sh", "bat")
_TOP_KEYS = {"name", "label", "perf_label", "python", "shell", "probes", "prepare"}
_REQUIRED = ("name", "label", "perf_label", "python", "shell")


@dataclass(frozen=True)
class ProbeCapabilities:
    """What the harness can measure on this platform; a missing one is recorded as unavailable."""

    io_counters: bool = False  # psutil Process.io_counters()
    valgrind: bool = False  # instruction counts under valgrind
    rchar_wchar: bool = False  # bytes passed to read/write calls (/proc/<pid>/io)


@dataclass(frozen=True)
class Platform:
    """One agent OS: its Jenkins labels, how to start Python and which shell step runs commands."""

    name: str
    label: str
    perf_label: str
    python: str
    shell: str
    probes: ProbeCapabilities
    prepare: tuple[str, ...]
    source: Path

    @property
    def python_command(self) -> tuple[str, ...]:
        """The launcher split into argv words, e.g. ("py", "-3")."""
        return tuple(self.python.split())


def default_directory(project_root: Path | None = None) -> Path:
    """platforms/ under the project root (default: the current directory)."""
    return Path(project_root or Path.cwd()) / "platforms"


def _probes(data: Any, source: Path) -> ProbeCapabilities:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [probes] must be a table of true/false values.")
    known = {f.name for f in fields(ProbeCapabilities)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) in [probes]: {', '.join(unknown)}; "
            f"known keys are {', '.join(sorted(known))}."
        )
    for key, value in data.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: probes.{key} = {value!r}; write true or false.")
    return ProbeCapabilities(**data)


def _check_top(data: dict[str, Any], source: Path) -> None:
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known keys are "
            f"{', '.join(sorted(_TOP_KEYS))}."
        )
    for key in _REQUIRED:
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ConfigError(f"{source}: `{key}` is missing or empty; it must be a string.")
    if data["shell"] not in SHELLS:
        raise ConfigError(f"{source}: shell = {data['shell']!r}; use one of {', '.join(SHELLS)}.")
    if data["name"] != source.stem:
        raise ConfigError(
            f"{source}: name = {data['name']!r} but the file is {source.name}; they must match."
        )


def load_platform(path: Path) -> Platform:
    """Read and check one profile; unknown keys are errors so a typo cannot go unnoticed."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such platform profile.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from exc
    _check_top(data, path)
    prepare = data.get("prepare", {}).get("steps", [])
    if not isinstance(prepare, list) or not all(isinstance(s, str) for s in prepare):
        raise ConfigError(f"{path}: prepare.steps must be a list of strings.")
    return Platform(
        name=data["name"],
        label=data["label"],
        perf_label=data["perf_label"],
        python=data["python"],
        shell=data["shell"],
        probes=_probes(data.get("probes", {}), path),
        prepare=tuple(prepare),
        source=path,
    )


def load_platforms(directory: Path) -> dict[str, Platform]:
    """Every profile in `directory`, by name, in name order."""
    directory = Path(directory)
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise ConfigError(
            f"{directory}: no platform profiles (*.toml); the project ships platforms/linux.toml, "
            f"windows.toml and macos.toml."
        )
    return {p.stem: load_platform(p) for p in paths}


def get_platform(name: str, directory: Path) -> Platform:
    """One profile by name, with the known names in the error when it does not exist."""
    registry = load_platforms(directory)
    if name not in registry:
        raise ConfigError(
            f"platform {name!r} has no profile in {directory}; known: {', '.join(registry)}."
        )
    return registry[name]
