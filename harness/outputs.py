"""All-or-nothing outputs per session: a command's --out directory holds one session's files.

`session_output(out)` gives the command a fresh staging directory beside `out` (same file system,
so the swap is two renames). When the session finishes, the staging directory replaces `out` as a
whole: no file of an earlier session survives next to the new ones, and `work/` holds only this
session's rounds. When the session fails or is interrupted, the staging directory is removed and
`out`, if it exists, is left as it was plus a SESSION-FAILED.txt marker that says this session
failed and the other files are older: `harness publish github` refuses such a directory, so a
stale verdict is never posted for a build whose own session failed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import ConfigError
from harness.files import atomic_write_text, check_output_dir

FAILED_MARKER = "SESSION-FAILED.txt"


@contextmanager
def session_output(out_dir: Path) -> Iterator[Path]:
    """A staging directory that becomes `out_dir` when the block finishes without an error."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.session-", dir=out_dir.parent))
    try:
        yield staging
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if out_dir.is_dir():
            _mark_failed(out_dir, exc)
        raise
    _swap(staging, out_dir)


def _swap(staging: Path, out_dir: Path) -> None:
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; --out is an ordinary dir
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.rmdir(old)
    os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _mark_failed(out_dir: Path, exc: BaseException) -> None:
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else \
        f"{type(exc).__name__}: {exc}".splitlines()[0]
    try:
        atomic_write_text(out_dir / FAILED_MARKER, (
            f"The last harness session writing to {out_dir} failed ({reason}).\n"
            "Every other file here is from an earlier session: do not publish or trust it.\n"
            "The next session that finishes replaces this directory as a whole.\n"))
    except OSError:
        pass  # the error being raised says what happened; the marker is a courtesy


def check_session(out_dir: Path) -> None:
    """ConfigError when `out_dir`'s last session failed (its files are older than the build)."""
    marker = Path(out_dir) / FAILED_MARKER
    if marker.exists():
        first = marker.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
        raise ConfigError(f"{marker}: {' '.join(first)} Its verdict is stale and is not "
                          "published; fix the failure shown in the build log and run again.")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
