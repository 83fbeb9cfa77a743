"""The baseline's code: a git worktree of a ref, installed in an environment of its own."""

from __future__ import annotations

import contextlib
import hashlib
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


def _purelib(env_dir: Path) -> Path:
    out = subprocess.run(
        [str(_env_python(env_dir)), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    return Path(out)


def _dependency_path_file(purelib: Path) -> None:
    """Let the new environment fall back on the harness' own site-packages for dependencies.

    The baseline's own install comes first on sys.path; the .pth line appends the current
    interpreter's site-packages after it, so a baseline needs no network to find aiohttp & co.
    """
    paths = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    (purelib / "zz_harness_fallback.pth").write_text("\n".join(paths) + "\n")


def _env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _source_path_file(purelib: Path, source: Path) -> None:
    """Put the baseline's source on its environment's path, as an editable install would.

    A .pth line (no build step, so no network and no build backend needed) names the checkout,
    or its src/ folder for a src layout. Its name sorts before the dependency fallback, so the
    baseline's own code always wins over the candidate's.
    """
    roots = [source / "src"] if (source / "src").is_dir() else []
    (purelib / "aa_harness_baseline.pth").write_text(
        "\n".join(str(p) for p in [*roots, source]) + "\n"
    )


def baseline_environment(cache: Path, source: Path, commit: str) -> str:
    """A virtual environment of the baseline's own, reused for the same commit and Python.

    It is only used once complete (a marker file); the source path inside it is rewritten for
    each checkout, since worktrees are temporary.
    """
    env_dir = cache / "envs" / hashlib.sha256(f"{commit}|{sys.version}".encode()).hexdigest()[:16]
    marker = env_dir / ".harness-ready"
    ready = marker.exists()
    if not ready:
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
    purelib = _purelib(env_dir)
    if not ready:
        _dependency_path_file(purelib)
        marker.write_text(commit + "\n")
    _source_path_file(purelib, source)
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
    tmp: Path | None = None
    try:  # mkdtemp and `worktree add` inside: a Ctrl-C during either leaks nothing
        tmp = Path(tempfile.mkdtemp(prefix="baseline-", dir=cache))
        tree = tmp / "tree"
        _git(["worktree", "add", "--detach", "--force", str(tree), commit], root)
        yield Checkout(root=tree, commit=commit, python=baseline_environment(cache, tree, commit))
    finally:
        if tmp is not None:  # twice --force: an interrupted `add` leaves its worktree locked
            _git(["worktree", "remove", "--force", "--force", str(tmp / "tree")], root,
                 check=False)
            shutil.rmtree(tmp, ignore_errors=True)
        _git(["worktree", "prune"], root, check=False)
