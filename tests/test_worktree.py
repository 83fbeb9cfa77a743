"""The baseline's checkout: a temporary worktree with its own environment, always cleaned up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.worktree import baseline_checkout, default_baseline_ref, resolve_commit


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("VERSION = 'old'\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "old")
    (root / "pkg" / "__init__.py").write_text("VERSION = 'new'\n")
    _git(root, "commit", "-q", "-am", "new")
    return root


def _worktrees(root: Path) -> list[str]:
    return [line for line in _git(root, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


def test_the_baseline_runs_its_own_code_in_its_own_environment(repo, tmp_path):
    with baseline_checkout(repo, "HEAD~1") as checkout:
        out = subprocess.run([checkout.python, "-c", "import pkg; print(pkg.VERSION)"],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout
        assert out.strip() == "old"  # the baseline's code is on its environment's path
        assert checkout.commit == _git(repo, "rev-parse", "HEAD~1")
    assert len(_worktrees(repo)) == 1


def test_ctrl_c_inside_removes_the_worktree_and_keeps_a_reusable_environment(repo):
    with pytest.raises(KeyboardInterrupt):
        with baseline_checkout(repo, "HEAD~1") as checkout:
            tree = checkout.root
            raise KeyboardInterrupt
    assert not tree.exists()
    assert len(_worktrees(repo)) == 1
    ready = list((repo / ".perf-cache" / "envs").glob("*/.harness-ready"))
    assert len(ready) == 1
    with baseline_checkout(repo, "HEAD~1") as again:
        assert Path(again.python).parents[1] == ready[0].parent  # reused, not rebuilt


def test_an_unknown_ref_says_how_to_name_one(repo):
    with pytest.raises(ConfigError, match="not a commit.*HEAD~1"):
        resolve_commit(repo, "no-such-branch")


def test_default_baseline_is_the_merge_base_with_main(repo):
    _git(repo, "checkout", "-q", "-b", "feature")
    (repo / "pkg" / "extra.py").write_text("X = 1\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "feature work")
    assert default_baseline_ref(repo) == _git(repo, "rev-parse", "main")
