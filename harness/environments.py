"""Per-side environments: the subject's own interpreter and dependencies, built one way for both.

Not to be confused with harness.environment (the machine fingerprint recorded in results.json).

Each side of `harness perf` (the baseline worktree and the candidate working tree) gets a virtual
environment created by the interpreter the experiment asks for (`[subject] python = "3.10"` or a
path; default: the interpreter the harness runs on, outside its venv), with the dependencies that
side's own tree declares (`[subject] requirements`, else requirements.txt, else pyproject.toml's
[project] dependencies) and the side's `[subject] install` commands. The tree itself goes on the
environment's path through a .pth line, as an editable install would, without a build step.

Environments are cached under <cache>/envs/ by the hash of what they were built from (the
interpreter's version and path, the declaration files' contents, the install commands) plus the
side's label, so the baseline and the candidate never share one and an A/A of one commit builds two
identical ones. pip's own cache is used; with HARNESS_WHEELHOUSE=DIR pip installs only from DIR
(offline agents). The harness never installs itself into a subject's environment: probes load from
their own folder (harness.probes.inject).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, HarnessError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

WHEELHOUSE_ENV = "HARNESS_WHEELHOUSE"
MARKER = ".harness-ready"
PACKAGES_FILE = "harness-packages.json"
SOURCE_PTH = "aa_harness_source.pth"
INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class EnvironmentSpec:
    """What the experiment says about the subject's environment ([subject] keys)."""

    python: str | None = None  # "3.10", a path, or None: the harness' base interpreter
    requirements: tuple[str, ...] = ()  # files in the tree; () = detect
    install: tuple[tuple[str, ...], ...] = ()  # commands run with {python} = the environment's


@dataclass(frozen=True)
class SideEnvironment:
    """A built environment: its interpreter and what it holds, recorded per side in results."""

    python: str
    python_version: str
    packages: dict[str, str] = field(default_factory=dict)
    built_from: tuple[str, ...] = ()
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "python_version": self.python_version,
                "packages": dict(sorted(self.packages.items())),
                "built_from": list(self.built_from), "key": self.key}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SideEnvironment:
        return cls(python=str(data["python"]), python_version=str(data["python_version"]),
                   packages=dict(data.get("packages", {})),
                   built_from=tuple(data.get("built_from", ())), key=str(data.get("key", "")))


def _base_interpreter() -> str:
    """The interpreter the harness runs on, outside any venv (a venv of a venv chains paths)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if Path(base).exists() else sys.executable


def find_interpreter(wanted: str | None) -> str:
    """The interpreter for `[subject] python`: a version like "3.10", a path, or the default."""
    if not wanted:
        return _base_interpreter()
    if re.fullmatch(r"\d+\.\d+", wanted):
        candidates = [shutil.which(f"python{wanted}")]
        home = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
        candidates += sorted(glob.glob(str(home / "versions" / f"{wanted}.*" / "bin" / "python")),
                             reverse=True)
        if sys.platform == "win32" and shutil.which("py"):
            proc = subprocess.run(["py", f"-{wanted}", "-c", "import sys; print(sys.executable)"],
                                  capture_output=True, text=True, timeout=60, check=False)
            candidates.append(proc.stdout.strip() if proc.returncode == 0 else None)
        for found in candidates:
            if found and _version_of(found).startswith(wanted + "."):
                return found
        raise ConfigError(
            f'[subject] python = "{wanted}": no Python {wanted} on this machine (looked for '
            f"python{wanted} on PATH and under {home / 'versions'}). Install it, or give the "
            f"interpreter's path instead."
        )
    path = Path(wanted).expanduser()
    if not path.exists():
        raise ConfigError(
            f'[subject] python = "{wanted}": no such interpreter. Give a path to a python '
            f'executable or a version such as "3.10".'
        )
    return str(path)


_VERSION = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


def _version_of(python: str) -> str:
    try:
        proc = subprocess.run([python, "-c", _VERSION], capture_output=True, text=True,
                              timeout=60, check=False)
    except OSError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def declarations(tree: Path, spec: EnvironmentSpec, *, missing_ok: bool = False) -> list[Path]:
    """The dependency files of one tree: those the experiment names, else the usual ones.

    With `missing_ok` (a baseline older than the change that added the named files), a tree
    holding none of them is read as if none were named.
    """
    if spec.requirements:
        found = [tree / name for name in spec.requirements if (tree / name).is_file()]
        missing = [name for name in spec.requirements if not (tree / name).is_file()]
        if missing and not (missing_ok and not found):
            raise ConfigError(
                f"[subject] requirements: {', '.join(missing)} not in {tree}. Name files that "
                f"this side's tree holds (paths relative to its top), or remove the key."
            )
        if found:
            return found
    if (tree / "requirements.txt").is_file():
        return [tree / "requirements.txt"]
    if _pyproject_dependencies(tree / "pyproject.toml"):
        return [tree / "pyproject.toml"]
    return []


def _pyproject_dependencies(path: Path) -> list[str]:
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable TOML ({exc}); fix it or name "
                          f"[subject] requirements files instead.") from exc
    deps = data.get("project", {}).get("dependencies", [])
    return [str(d) for d in deps] if isinstance(deps, list) else []


def _key(python: str, version: str, files: Sequence[Path], tree: Path,
         spec: EnvironmentSpec) -> str:
    digest = hashlib.sha256()
    digest.update(f"{Path(python).resolve()}|{version}\n".encode())
    for path in files:
        digest.update(f"{path.relative_to(tree).as_posix()}\n".encode())
        digest.update(path.read_bytes())
    for command in spec.install:
        digest.update(("\0".join(command) + "\n").encode())
    return digest.hexdigest()[:16]


def env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _run(argv: list[str], *, cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"{what}: {' '.join(argv)!r} could not run ({exc})") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise HarnessError(f"{what}: {' '.join(argv)!r} exited with code {proc.returncode}.\n"
                           f"{tail}")


def _pip(env: Path, args: list[str], *, cwd: Path, what: str) -> None:
    """pip of the harness, installing into the environment (which gets no pip of its own)."""
    wheelhouse = os.environ.get(WHEELHOUSE_ENV)
    offline = ["--no-index", "--find-links", wheelhouse] if wheelhouse else []
    _run([sys.executable, "-m", "pip", "--python", str(env_python(env)), "install",
          "--disable-pip-version-check", "--quiet", *offline, *args], cwd=cwd, what=what)


def _install(env: Path, tree: Path, files: Sequence[Path], spec: EnvironmentSpec) -> None:
    for path in files:
        what = f"installing the dependencies of {path}"
        if path.name == "pyproject.toml":
            deps = _pyproject_dependencies(path)
            if deps:
                _pip(env, deps, cwd=tree, what=what)
        else:
            _pip(env, ["-r", str(path)], cwd=tree, what=what)
    python = str(env_python(env))
    for command in spec.install:
        argv = [python if part == "{python}" else part.replace("{python}", python)
                for part in command]
        _run(argv, cwd=tree, what="[subject] install")


_LIST_PACKAGES = (
    "import importlib.metadata as m, json, sys\n"
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()\n"
    "                  if d.metadata['Name']}))"
)


def _packages(python: str) -> dict[str, str]:
    proc = subprocess.run([python, "-c", _LIST_PACKAGES], capture_output=True, text=True,
                          timeout=60, check=False)
    try:
        return dict(json.loads(proc.stdout)) if proc.returncode == 0 else {}
    except ValueError:
        return {}


def _source_path_file(env: Path, python: str, tree: Path) -> None:
    """Put the side's tree on its environment's path (its src/ folder first for a src layout)."""
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    roots = [tree / "src"] if (tree / "src").is_dir() else []
    (Path(purelib) / SOURCE_PTH).write_text("\n".join(str(p) for p in [*roots, tree]) + "\n")


def side_environment(cache: Path, tree: Path, spec: EnvironmentSpec, *, label: str,
                     log=None) -> SideEnvironment:
    """The environment of one side's tree, built when missing, reused when its inputs match.

    It is only reused once complete (a marker file written last); the .pth naming the tree is
    rewritten each time, since baseline worktrees are temporary.
    """
    interpreter = find_interpreter(spec.python)
    version = _version_of(interpreter)
    if not version:
        raise ConfigError(f"{interpreter}: does not run as a Python interpreter; fix "
                          f"[subject] python.")
    files = declarations(tree, spec, missing_ok=label == "baseline")
    key = _key(interpreter, version, files, tree, spec)
    env = cache / "envs" / f"{key}-{label}"
    python = str(env_python(env))
    built_from = tuple(p.relative_to(tree).as_posix() for p in files) + tuple(
        " ".join(c) for c in spec.install)
    if not (env / MARKER).exists():
        if log:
            log(f"building the {label} environment (Python {version}"
                + (f", from {', '.join(built_from)}" if built_from else "") + ")")
        shutil.rmtree(env, ignore_errors=True)
        env.parent.mkdir(parents=True, exist_ok=True)
        _run([interpreter, "-m", "venv", "--without-pip", str(env)], cwd=tree,
             what=f"creating the {label} environment")
        _source_path_file(env, python, tree)  # install commands may import the tree
        _install(env, tree, files, spec)
        (env / PACKAGES_FILE).write_text(json.dumps(_packages(python), sort_keys=True))
        (env / MARKER).write_text(key + "\n")
    _source_path_file(env, python, tree)
    try:
        packages = json.loads((env / PACKAGES_FILE).read_text())
    except (OSError, ValueError):
        packages = {}
    return SideEnvironment(python=python, python_version=version, packages=packages,
                           built_from=built_from, key=key)
