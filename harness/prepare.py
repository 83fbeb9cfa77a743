"""`[subject] prepare`: commands run once per side and environment, their output kept and reused.

A prepare command builds something every round then reuses (a pre-filled database to copy, a
compiled asset) into `{prepare_dir}`. It runs in the side's tree with the side's interpreter as
`{python}`, without the probe hook, and only when its inputs changed: the commands as written, the
side's environment, and the contents of every argument that names a file of the tree. `setup`
commands stay per round and may read `{prepare_dir}`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from harness.errors import SubjectError
from harness.experiment import Subject, _fill_variables, expand
from harness.secrets import redact
from harness.worktree import Checkout

MARKER = ".harness-prepared"
TIMEOUT = 3600.0


def _key(subject: Subject, checkout: Checkout, cwd: Path) -> str:
    digest = hashlib.sha256()
    digest.update((checkout.environment.key if checkout.environment else checkout.python).encode())
    for command in subject.prepare:
        digest.update(("\0".join(command) + "\n").encode())
        for arg in command:
            path = cwd / arg
            if "{" not in arg and path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _fill(subject: Subject, prepare_dir: str) -> Subject:
    """The subject with {prepare_dir} written in; the runtime placeholders stay for the runner."""
    values = {"prepare_dir": prepare_dir}

    def fill(args: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_fill_variables(a, values) for a in args)

    return dataclasses.replace(
        subject,
        command=fill(subject.command),
        env={k: _fill_variables(v, values) for k, v in subject.env.items()},
        setup=tuple(dataclasses.replace(s, command=fill(s.command)) for s in subject.setup),
        prepare=(),
    )


def prepare_side(subject: Subject, checkout: Checkout, *, cache: Path, label: str,
                 log: Callable[[str], None] | None = None) -> Subject:
    """Run the prepare commands for one side unless their output for these inputs is kept."""
    if not subject.prepare:
        return subject
    cwd = checkout.root / subject.cwd if subject.cwd else checkout.root
    key = _key(subject, checkout, cwd)
    out = cache / "prepared" / f"{key}-{label}"
    if not (out / MARKER).exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        values = {"python": checkout.python, "prepare_dir": str(out)}
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        for number, command in enumerate(subject.prepare, start=1):
            argv = list(expand(command, values))
            if log:
                log(redact(f"prepare {label} ({number}/{len(subject.prepare)}): {' '.join(argv)}"))
            logfile = out.parent / f"{key}-{label}-prepare-{number}.log"
            with open(logfile, "wb") as handle:
                try:
                    code = subprocess.run(argv, cwd=cwd, env=env, stdout=handle,
                                          stderr=subprocess.STDOUT, timeout=TIMEOUT,
                                          check=False).returncode
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise SubjectError(f"{label}: prepare command {' '.join(argv)!r} could not "
                                       f"run in {cwd}: {exc}") from exc
            if code != 0:
                tail = logfile.read_text(errors="replace").splitlines()[-15:]
                raise SubjectError(f"{label}: prepare command {' '.join(argv)!r} exited with "
                                   f"code {code} (log: {logfile}).\n" + "\n".join(tail))
        (out / MARKER).write_text(key + "\n")
    out.mkdir(parents=True, exist_ok=True)
    return _fill(subject, str(out))

