"""The baseline's code: a git worktree of a ref, installed in an environment of its own."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import site
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError, HarnessError


@dataclass(frozen=True)
class Checkout:
    """Code to measure: where it lives, which commit it is, and the Python that runs it."""

    root: Path
    commit: str | None
    python: str


def _git(args: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
    except FileNotFoundError as exc:
        raise HarnessError("git is not installed; install git to compare against a ref") from exc
    if check and proc.returncode != 0:
        raise HarnessError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc


def project_root(start: Path) -> Path:
    """The top of the git checkout containing `start` (or `start` itself outside git)."""
    proc = _git(["rev-parse", "--show-toplevel"], start, check=False)
    return Path(proc.stdout.strip()) if proc.returncode == 0 else start.resolve()


def resolve_commit(root: Path, ref: str) -> str:
    """The full commit id of `ref`, or a ConfigError that says how to name a ref."""
    proc = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ConfigError(
            f"--baseline-ref {ref!r}: not a commit in {root}. Use a branch, tag or commit id "
            f"(e.g. main, HEAD~1), or fetch it first."
        )
    return proc.stdout.strip()


def default_baseline_ref(root: Path) -> str:
    """The merge base with `main` (or `origin/main`), or HEAD when there is no main."""
    for main in ("main", "origin/main", "master", "origin/master"):
        proc = _git(["merge-base", "HEAD", main], root, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return "HEAD"


def _dependency_path_file(env_dir: Path) -> None:
    """Let the new environment fall back on the harness' own site-packages for dependencies.

    The baseline's own install comes first on sys.path; the .pth line appends the current
    interpreter's site-packages after it, so a baseline needs no network to find aiohttp & co.
    """
    purelib = subprocess.run(
        [str(_env_python(env_dir)), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    paths = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    (Path(purelib) / "zz_harness_fallback.pth").write_text("\n".join(paths) + "\n")


def _env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _install(env_dir: Path, source: Path) -> None:
    if not ((source / "pyproject.toml").exists() or (source / "setup.py").exists()):
        return
    proc = subprocess.run(
        [str(_env_python(env_dir)), "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if proc.returncode != 0:
        raise HarnessError(
            f"installing the baseline from {source} failed:\n{proc.stderr.strip()[-2000:]}\n"
            f"Fix the baseline's packaging or compare against a results file (--baseline FILE)."
        )


def baseline_environment(cache: Path, source: Path, commit: str) -> str:
    """A virtual environment with the baseline installed, reused when the commit is the same."""
    env_dir = cache / "envs" / hashlib.sha256(f"{commit}|{sys.version}".encode()).hexdigest()[:16]
    marker = env_dir / ".harness-ready"
    if not marker.exists():
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        _dependency_path_file(env_dir)
        _install(env_dir, source)
        marker.write_text(commit + "\n")
    return str(_env_python(env_dir))


@contextlib.contextmanager
def baseline_checkout(root: Path, ref: str, *, cache: Path | None = None) -> Iterator[Checkout]:
    """Check `ref` out into a temporary worktree with its own environment; always removed after.

    The worktree is removed also after Ctrl-C; environments are cached per commit under `cache`
    (default: <root>/.perf-cache) and reused only once completely built (a marker file).
    """
    commit = resolve_commit(root, ref)
    cache = cache or root / ".perf-cache"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="baseline-", dir=cache))
    tree = tmp / "tree"
    _git(["worktree", "add", "--detach", "--force", str(tree), commit], root)
    try:
        python = (
            baseline_environment(cache, tree, commit)
            if os.environ.get("PERF_BASELINE_SAME_ENV") != "1"
            else sys.executable
        )
        yield Checkout(root=tree, commit=commit, python=python)
    finally:
        _git(["worktree", "remove", "--force", str(tree)], root, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        _git(["worktree", "prune"], root, check=False)
