"""The code each side of a perf session runs: a git worktree of a ref, the working tree, or a
directory, each with an environment of its own built from its own declarations
(harness.environments)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.environments import EnvironmentSpec, SideEnvironment, side_environment
from harness.errors import ConfigError, HarnessError

CACHE_DIR = ".perf-cache"


@dataclass(frozen=True)
class Checkout:
    """Code to measure: where it lives, which commit it is, and the Python that runs it."""

    root: Path
    commit: str | None
    python: str
    environment: SideEnvironment | None = None
    uncommitted: bool = False  # the working tree differs from its commit

    def describe(self) -> dict:
        """What results.json records about this side's code and environment."""
        out: dict = {"root": str(self.root), "commit": self.commit,
                     "uncommitted_changes": self.uncommitted}
        if self.environment is not None:
            out["environment"] = self.environment.to_json()
        return out


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
    try:
        proc = _git(["rev-parse", "--show-toplevel"], start, check=False)
    except HarnessError:  # no git installed: a plain directory
        return start.resolve()
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


def in_git(start: Path) -> bool:
    """Whether `start` lies inside a git checkout (False also when git is not installed)."""
    try:
        return _git(["rev-parse", "--show-toplevel"], start, check=False).returncode == 0
    except HarnessError:
        return False


def ignore_cache(root: Path) -> None:
    """List .perf-cache/ in .git/info/exclude, so `git add -A` never stages environments."""
    proc = _git(["rev-parse", "--git-path", "info/exclude"], root, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return
    exclude = Path(proc.stdout.strip())
    exclude = exclude if exclude.is_absolute() else root / exclude
    line = f"/{CACHE_DIR}/"
    text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    if line not in text.splitlines():
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text(text + ("" if not text or text.endswith("\n") else "\n") + line + "\n",
                           encoding="utf-8")


def has_uncommitted_changes(root: Path, ignore: tuple[Path, ...] = ()) -> bool:
    """Whether the working tree differs from HEAD (tracked or untracked files; the cache and
    the folders in `ignore`, such as the session's output, aside)."""
    excluded = [f":(exclude){CACHE_DIR}"]
    for path in ignore:
        with contextlib.suppress(ValueError):  # outside the tree: nothing to leave out
            excluded.append(f":(exclude){Path(path).resolve().relative_to(root).as_posix()}")
    proc = _git(["status", "--porcelain", "--untracked-files=normal", "--", ".", *excluded],
                root, check=False)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def cache_dir(root: Path) -> Path:
    cache = root / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    if in_git(root):
        ignore_cache(root)
    return cache


def tree_checkout_commit(root: Path) -> str | None:
    """The commit the working tree at `root` is based on (None before the first commit)."""
    proc = _git(["rev-parse", "--verify", "--quiet", "HEAD"], root, check=False)
    return proc.stdout.strip() or None


def tree_checkout(root: Path, spec: EnvironmentSpec, *, label: str, cache: Path | None = None,
                  log=None, ignore: tuple[Path, ...] = ()) -> Checkout:
    """A directory as it is (the working tree, committed or not, any folder), in its environment."""
    root = root.resolve()
    git = in_git(root)
    commit = tree_checkout_commit(root) if git else None
    env = side_environment(cache or cache_dir(root), root, spec, label=label, log=log)
    return Checkout(root=root, commit=commit, python=env.python, environment=env,
                    uncommitted=git and has_uncommitted_changes(root, ignore))


@contextlib.contextmanager
def baseline_checkout(root: Path, ref: str, *, cache: Path | None = None,
                      spec: EnvironmentSpec | None = None, log=None) -> Iterator[Checkout]:
    """Check `ref` out into a temporary worktree with its own environment; always removed after.

    The worktree is removed also after Ctrl-C; environments are cached under `cache` (default:
    <root>/.perf-cache) by what they were built from, reused only once completely built.
    """
    if not in_git(root):
        raise ConfigError(
            f"--baseline-ref {ref!r} needs a git checkout, and {root} is not in one. Compare two "
            f"directories with --baseline-dir DIR, or variables alone with --baseline-set "
            f"NAME=VALUE (no git needed)."
        )
    commit = resolve_commit(root, ref)
    cache = cache or cache_dir(root)
    cache.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:  # mkdtemp and `worktree add` inside: a Ctrl-C during either leaks nothing
        tmp = Path(tempfile.mkdtemp(prefix="baseline-", dir=cache))
        tree = tmp / "tree"
        _git(["worktree", "add", "--detach", "--force", str(tree), commit], root)
        env = side_environment(cache, tree, spec or EnvironmentSpec(), label="baseline", log=log)
        yield Checkout(root=tree, commit=commit, python=env.python, environment=env)
    finally:
        if tmp is not None:  # twice --force: an interrupted `add` leaves its worktree locked
            _git(["worktree", "remove", "--force", "--force", str(tmp / "tree")], root,
                 check=False)
            shutil.rmtree(tmp, ignore_errors=True)
        _git(["worktree", "prune"], root, check=False)
