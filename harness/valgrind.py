"""Valgrind: where it runs, the command that wraps a subject, and its cachegrind/callgrind files.

Only the instruction event `Ir` is read. Both tools write text files made of `fl=` (file) and
`fn=` (function) records followed by cost lines (`position... cost...`); callgrind adds name
compression (`fn=(12) name` defines id 12, a later `fn=(12)` refers to it), inlined-file records
(`fi=`/`fe=`, which do not change the function) and call records: the one cost line after a
`calls=` line is the inclusive cost of that call and belongs to the callee, so it is not counted
as the caller's own (self) cost. Totals come from the `summary:` (or callgrind `totals:`) line.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ResultsFormatError

TOOLS = ("cachegrind", "callgrind")
SUPPORTED_PLATFORMS = ("linux", "darwin")  # valgrind has no Windows port

# How much slower than native each tool runs a CPython workload on our machines (issue 8); used to
# stretch readiness and stop timeouts, which the experiment states for a native run.
SLOWDOWN = {"cachegrind": 40.0, "callgrind": 100.0}

_COMPRESSED = re.compile(r"^\((\d+)\)(?:\s+(.*))?$")
_SELF_COST_START = re.compile(r"^[0-9+\-*]")
_NAME_KEYS = ("fl", "fn", "fi", "fe", "ob", "cfl", "cfi", "cfn", "cob", "jump", "jcnd")
_SHARED_IDS = {"cfn": "fn", "cfi": "fl", "cfl": "fl", "fi": "fl", "fe": "fl", "cob": "ob"}
_RECURSION_SUFFIX = re.compile(r"'\d+$")  # callgrind's fn'2 = the same function, deeper recursion


@dataclass(frozen=True)
class Profile:
    """The instruction counts of one valgrind output file (or the sum of several)."""

    total: int
    functions: dict[str, int] = field(default_factory=dict)  # "file:function" -> self Ir


def unavailable_reason(platform: str | None = None) -> str | None:
    """Why valgrind cannot run here, or None when it can."""
    platform = platform or sys.platform
    if not platform.startswith(SUPPORTED_PLATFORMS):
        return f"valgrind does not run on {platform}; the instruction tier needs Linux or macOS"
    if shutil.which("valgrind") is None:
        return ("valgrind is not installed (not found on PATH); install it, e.g. "
                "`apt-get install valgrind`")
    return None


def command(tool: str, out_file: Path, argv: Iterable[str],
            log_file: Path | None = None) -> list[str]:
    """The command line that runs `argv` under `tool`, writing counts to `out_file`.

    `log_file` takes valgrind's own messages, so the subject's output (and a readiness line in it)
    stays as it would be without valgrind.
    `out_file` may contain `%p` (the process id) so that children followed through exec or fork
    write their own files; `read_profiles` sums them.
    """
    if tool not in TOOLS:
        raise ValueError(f"unknown valgrind tool {tool!r}; use one of {', '.join(TOOLS)}")
    if tool == "cachegrind":
        options = ["--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out_file}"]
    else:
        options = ["--tool=callgrind", f"--callgrind-out-file={out_file}"]
    # --trace-children: a wrapper script (a pyenv shim, a launcher) execs the real program, whose
    # instructions are the ones that matter.
    logging = [] if log_file is None else [f"--log-file={log_file}"]
    return ["valgrind", "--quiet", "--trace-children=yes", *logging, *options, *argv]


def parse(text: str, source: str = "<valgrind output>") -> Profile:
    """Parse one cachegrind or callgrind output text into total and per-function self Ir."""
    events: list[str] | None = None
    positions = 1
    names: dict[tuple[str, str], str] = {}
    current = {"fl": "???", "fn": "???", "ob": "???"}
    functions: dict[str, int] = defaultdict(int)
    total: int | None = None
    skip_next_cost = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _SELF_COST_START.match(line):
            if skip_next_cost:
                skip_next_cost = False  # inclusive cost of a call: the callee's, not ours
                continue
            if events is None:
                raise ResultsFormatError(f"{source}:{number}: cost line before an `events:` line")
            ir = _ir_of(line, positions, events, source, number)
            if ir:
                # Without debug information the file is ???; callgrind still names the object.
                where = current["ob"] if current["fl"] == "???" else current["fl"]
                functions[f"{where}:{current['fn']}"] += ir
            continue
        key, sep, value = line.partition("=")
        if sep and key in _NAME_KEYS:
            name = _resolve(names, key, value.strip())
            if key in ("fl", "fn", "ob"):
                current[key] = _RECURSION_SUFFIX.sub("", name) if key == "fn" else name
                if key == "fl":
                    current["fn"] = "???"
            continue
        if sep and key == "calls":
            skip_next_cost = True
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "events":
            events = value.split()
        elif key == "positions":
            positions = len(value.split())
        elif key in ("summary", "totals") and total is None:
            total = _summary_ir(value, events, source, number)
    if events is None or "Ir" not in events:
        raise ResultsFormatError(
            f"{source}: no `events:` line with Ir; is this a cachegrind or callgrind output file?")
    if total is None:
        raise ResultsFormatError(
            f"{source}: no `summary:` line; the run was cut short (killed before valgrind wrote "
            "its totals); stop the subject with SIGTERM, not SIGKILL")
    return Profile(total=total, functions=dict(functions))


def _resolve(names: dict[tuple[str, str], str], key: str, value: str) -> str:
    """Undo callgrind's name compression (`cfn` shares ids with `fn`, `cfi` etc. with `fl`)."""
    kind = _SHARED_IDS.get(key, key)
    match = _COMPRESSED.match(value)
    if match is None:
        return value
    ident, name = match.groups()
    if name is not None:
        names[(kind, ident)] = name
        return name
    return names.get((kind, ident), f"({ident})")


def _ir_of(line: str, positions: int, events: list[str], source: str, number: int) -> int:
    fields = line.split()
    costs = fields[positions:]
    index = events.index("Ir") if "Ir" in events else 0
    if index >= len(costs):
        return 0  # trailing zero costs may be omitted
    try:
        return int(costs[index])
    except ValueError:
        raise ResultsFormatError(f"{source}:{number}: cost line {line!r} is not numeric") from None


def _summary_ir(value: str, events: list[str] | None, source: str, number: int) -> int:
    costs = value.split()
    index = events.index("Ir") if events and "Ir" in events else 0
    try:
        return int(costs[index])
    except (ValueError, IndexError):
        raise ResultsFormatError(f"{source}:{number}: summary {value!r} has no Ir count") from None


def read_profiles(paths: Iterable[Path]) -> Profile:
    """Read and sum several output files (one per process of the subject's tree)."""
    total = 0
    functions: dict[str, int] = defaultdict(int)
    count = 0
    for path in sorted(paths):
        profile = parse(Path(path).read_text(encoding="utf-8", errors="replace"), str(path))
        total += profile.total
        for name, ir in profile.functions.items():
            functions[name] += ir
        count += 1
    if count == 0:
        raise ResultsFormatError("no valgrind output file was written; did the subject start?")
    return Profile(total=total, functions=dict(functions))
