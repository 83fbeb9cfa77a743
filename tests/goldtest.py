"""Golden files for rendered reports, with a "save actual" switch: GOLDEN_SAVE=1 rewrites them."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def assert_golden(name: str, actual: str) -> None:
    """Compare `actual` with tests/golden/NAME; with GOLDEN_SAVE=1, write it there instead."""
    path = GOLDEN / name
    if os.environ.get("GOLDEN_SAVE") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="\n")
        return
    assert path.exists(), f"{path} is missing: run `GOLDEN_SAVE=1 pytest {name}` to create it"
    # Checkouts may turn LF into CRLF (Windows agents); the content is what matters.
    expected = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    if actual != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True),
            fromfile=f"golden/{name}", tofile="actual",
        ))
        raise AssertionError(
            f"{name} differs from its golden file; if the change is intended, re-run with "
            f"GOLDEN_SAVE=1 and review the diff:\n{diff}"
        )
