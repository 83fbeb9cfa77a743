"""Atomic file writes: a result file is either complete or absent, never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.secrets import redact


def _file_mode() -> int:
    current = os.umask(0)
    os.umask(current)
    return 0o666 & ~current


_MODE = _file_mode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _MODE)  # mkstemp's 0600 would hide results from the CI agent's other users
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically, redacted: every report, verdict and results file the harness
    writes goes through here, so no secret value reaches an artifact."""
    atomic_write_bytes(path, redact(text).encode("utf-8"))


def check_output_dir(path: Path, flag: str = "--out") -> None:
    """ConfigError, before any work, when `path` cannot become a directory: it is a file, or a
    file stands where one of its parents should be."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists() and not candidate.is_dir():
            what = "is a file" if candidate == path else f"is under {candidate}, which is a file"
            raise ConfigError(f"{flag} {path} {what}; give a directory (it is created when "
                              "missing)")
        if candidate.is_dir():
            return


def atomic_write_json(path: Path, value: Any) -> None:
    """Write JSON atomically, with sorted keys so files diff well."""
    atomic_write_text(path, json.dumps(value, sort_keys=True, indent=1) + "\n")
