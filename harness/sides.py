"""The two sides of `harness perf`: which code each runs, in which environment, built one way.

The candidate is the working tree as it is, committed or not. The baseline is a git ref checked
out into a temporary worktree, another directory (`--baseline-dir`, no git needed), or the same
tree when only variables differ (`--baseline-set`, no git needed). Both sides get their
environment from harness.environments and their prepare step from harness.prepare through the
same calls, and both load the one experiment file (so its helper scripts come from one place).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.environments import EnvironmentSpec
from harness.errors import ConfigError
from harness.experiment import Experiment, Subject
from harness.prepare import prepare_side
from harness.worktree import (
    Checkout,
    baseline_checkout,
    cache_dir,
    default_baseline_ref,
    has_uncommitted_changes,
    in_git,
    tree_checkout,
    tree_checkout_commit,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class Side:
    """One side of the session: its label, its experiment (variables may differ) and its code."""

    label: str
    experiment: Experiment
    checkout: Checkout


def environment_spec(subject: Subject) -> EnvironmentSpec:
    return EnvironmentSpec(python=subject.interpreter, requirements=subject.requirements,
                           install=subject.install)


def _side(label: str, experiment: Experiment, checkout: Checkout, cache: Path, log: Log) -> Side:
    subject = prepare_side(experiment.subject, checkout, cache=cache, label=label, log=log)
    env = checkout.environment
    if env is not None:
        log(f"{label}: {checkout.root}" + (f" at {checkout.commit[:12]}" if checkout.commit else "")
            + (" with uncommitted changes" if checkout.uncommitted else "")
            + f"; Python {env.python_version}"
            + (f", {len(env.packages)} packages from {', '.join(env.built_from)}"
               if env.built_from else ""))
    return Side(label, dataclasses.replace(experiment, subject=subject), checkout)


def build_candidate(root: Path, experiment: Experiment, *, log: Log,
                    out_dir: Path | None = None) -> Side:
    """The working tree as it is, in an environment built from its own declarations.

    The session's own output folder does not count as an uncommitted change.
    """
    cache = cache_dir(root)
    checkout = tree_checkout(root, environment_spec(experiment.subject), label="candidate",
                             cache=cache, log=log, ignore=(out_dir,) if out_dir else ())
    return _side("candidate", experiment, checkout, cache, log)


def candidate_as_run(root: Path, experiment: Experiment, *, log: Log,
                     out_dir: Path | None = None) -> Side:
    """The working tree run by the harness' own interpreter, as `harness run` does.

    For comparisons with a results file (a nightly artifact made by `harness run`): the candidate
    must run the way the file's side ran. A confirmation re-run builds both sides afresh.
    """
    root = root.resolve()
    commit, uncommitted = None, False
    if in_git(root):
        commit = tree_checkout_commit(root)
        uncommitted = has_uncommitted_changes(root, (out_dir,) if out_dir else ())
    checkout = Checkout(root=root, commit=commit, python=sys.executable, uncommitted=uncommitted)
    return _side("candidate", experiment, checkout, cache_dir(root), log)


def enter_baseline(stack: contextlib.ExitStack, root: Path, experiment: Experiment, *,
                   ref: str | None = None, directory: Path | None = None,
                   same_tree: bool = False, log: Log) -> Side:
    """The baseline side; a temporary worktree is removed when `stack` closes."""
    cache = cache_dir(root)
    spec = environment_spec(experiment.subject)
    if ref and directory:
        raise ConfigError("give --baseline-ref or --baseline-dir, not both")
    if directory is not None:
        if not Path(directory).is_dir():
            raise ConfigError(f"--baseline-dir {directory}: no such directory (give the folder "
                              f"holding the baseline's code)")
        checkout = tree_checkout(Path(directory), spec, label="baseline", cache=cache, log=log)
    elif ref is None and same_tree:
        checkout = tree_checkout(root, spec, label="baseline", cache=cache, log=log)
    else:
        if ref is None and not in_git(root):
            raise ConfigError(
                f"no baseline: {root} is not in a git checkout, so there is no merge base to "
                f"compare with. Give --baseline-dir DIR (another copy of the code), "
                f"--baseline-set NAME=VALUE (the same code with other variables) or "
                f"--baseline results.json."
            )
        ref = ref or default_baseline_ref(root)
        checkout = stack.enter_context(baseline_checkout(root, ref, cache=cache, spec=spec,
                                                         log=log))
    return _side("baseline", experiment, checkout, cache, log)
