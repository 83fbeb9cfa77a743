"""Scenario files in Gumby's timed-line grammar: what happens, when, on which instances, in a round.

A scenario line reads `@[H:]M:S callable [args] [{peers}]`, or `@! callable ...` for "right after
the previous line". `$name` / `${name}` take an experiment variable, `$$` is a literal `$`,
`&include FILE` reads another scenario (relative to the including file), `#` starts a comment.
The result is the lines in execution order: sorted by time, lines with the same time in file order,
an `@!` line right after the line before it. The grammar and the callables are documented in
docs/experiments.md; the runner (harness.runner) gives the callables their effect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.experiment import ScenarioLine, did_you_mean
from harness.units import parse_duration

WAIT_FOR_TIMEOUT = 60.0  # seconds `wait_for` polls when the line gives no TIMEOUT
WAIT_FOR_INTERVAL = 0.5  # seconds between two polls of `wait_for`

_TIME = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+)|(\$))")
_PEERS_PART = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def _check_path(args: tuple[str, ...]) -> None:
    if not args[0].startswith("/"):
        raise ConfigError(f"path {args[0]!r} must start with '/' (e.g. /health)")


def _check_post(args: tuple[str, ...]) -> None:
    _check_path(args)
    if len(args) > 1:
        try:
            json.loads(args[1])
        except ValueError as exc:
            raise ConfigError(
                f"body {args[1]!r} is not JSON: {exc} (write one JSON value, e.g. "
                f'{{"infohash": "$infohash"}})'
            ) from None


def _check_wait_for(args: tuple[str, ...]) -> None:
    _check_path(args)
    if len(args) > 3 and parse_duration(args[3]) <= 0:
        raise ConfigError(f"timeout {args[3]!r} must be above zero (e.g. 2m)")


def _check_sleep(args: tuple[str, ...]) -> None:
    parse_duration(args[0])


@dataclass(frozen=True)
class Action:
    """A callable a scenario line may name, with its arity and argument checks."""

    name: str
    usage: str
    min_args: int
    max_args: int
    peers: bool  # whether a {peers} set may say which instances it applies to
    check: Callable[[tuple[str, ...]], None] | None
    summary: str


CALLABLES: dict[str, Action] = {
    a.name: a
    for a in (
        Action("workload", "workload", 0, 0, False, None,
               "run the experiment's [workload] (every rate step) against its instance"),
        Action("get", "get PATH", 1, 1, True, _check_path,
               "send GET PATH to each instance in {peers} (default: every instance)"),
        Action("post", "post PATH [JSON]", 1, 2, True, _check_post,
               "send POST PATH with an optional JSON body to each instance in {peers}"),
        Action("wait_for", "wait_for PATH FIELD VALUE [TIMEOUT]", 3, 4, True, _check_wait_for,
               "poll GET PATH until the JSON field FIELD (dotted) equals VALUE"),
        Action("sleep", "sleep SECONDS", 1, 1, False, _check_sleep,
               "pause the scenario; later lines wait for it"),
        Action("stop", "stop", 0, 0, True, None,
               "stop the instances in {peers} (default: every instance)"),
        Action("end", "end", 0, 0, False, None, "end the round: stop everything, keep the data"),
    )
}


@dataclass(frozen=True)
class ParsedScenario:
    """What reading a scenario found: its lines in execution order, the texts read, the problems."""

    lines: tuple[ScenarioLine, ...]
    texts: tuple[str, ...]  # every file read, in reading order (part of the experiment's hash)
    problems: tuple[str, ...]  # "file:line: message (fix)"


class _LineError(Exception):
    """A problem with one line; becomes "file:line: message (fix)"."""


def _balanced_end(text: str, start: int) -> int:
    """Index just past the bracket that closes text[start], skipping JSON strings."""
    depth, i, quoted = 0, start, False
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise _LineError(f"unclosed {text[start]!r} (close it; JSON must stay on one line)")


def _tokenize(text: str) -> list[str]:
    """Words split on whitespace; {...} and [...] stay whole; '...' and "..." group words."""
    tokens: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            break  # a comment starts at the beginning of a word
        elif char in "'\"":
            end = text.find(char, i + 1)
            if end < 0:
                raise _LineError(f"unclosed quote {char} (close it on the same line)")
            tokens.append(text[i + 1:end])
            i = end + 1
        else:
            end = _balanced_end(text, i) if char in "{[" else i
            while end < len(text) and not text[end].isspace():
                end += 1
            tokens.append(text[i:end])
            i = end
    return tokens


def _substitute(token: str, variables: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(3):
            return "$"
        name = match.group(1) or match.group(2)
        if name not in variables:
            known = ", ".join(f"${v}" for v in sorted(variables)) or "none"
            raise _LineError(
                f"unknown variable ${name} ({did_you_mean(name, variables, prefix='$')}"
                f"variables come from [variables] in the experiment; known: {known})"
            )
        return variables[name]

    return _VARIABLE.sub(replace, token)


def _parse_time(token: str) -> float | None:
    if token == "@!":
        return None
    match = _TIME.fullmatch(token[1:])
    if not match:
        raise _LineError(
            f"{token!r} is not a time (write @M:S such as @0:30, @H:M:S such as @1:00:00, "
            f"or @! for right after the previous line)"
        )
    hours, minutes, seconds = int(match.group(1) or 0), int(match.group(2)), float(match.group(3))
    if seconds >= 60 or (match.group(1) is not None and minutes >= 60):
        raise _LineError(f"{token!r}: minutes and seconds go up to 59 (e.g. @1:30 for 90 s)")
    return hours * 3600.0 + minutes * 60.0 + seconds


def _is_peers(token: str) -> bool:
    """A trailing {…} without quotes or colons is a peer set; a JSON object always has both."""
    inner = token[1:-1].strip() if token.startswith("{") and token.endswith("}") else ""
    return bool(inner) and '"' not in inner and ":" not in inner


def _parse_peers(token: str, instances: int | None) -> tuple[int, ...]:
    chosen: list[int] = []
    for part in token[1:-1].split(","):
        match = _PEERS_PART.fullmatch(part)
        if not match:
            raise _LineError(f"{token!r} is not a peer set (write {{1,2}} or {{1-3}})")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low:
            raise _LineError(f"{token!r}: range {low}-{high} runs backwards (write {high}-{low})")
        chosen.extend(range(low, high + 1))
    wrong = [n for n in chosen if n < 1 or (instances is not None and n > instances)]
    if wrong:
        limit = f"1 to {instances}" if instances is not None else "1 or more"
        raise _LineError(f"{token!r}: instance {wrong[0]} does not exist (instances are {limit})")
    return tuple(sorted(set(chosen)))


def _check_call(name: str, args: tuple[str, ...], has_peers: bool) -> None:
    action = CALLABLES.get(name)
    if action is None:
        raise _LineError(
            f"unknown callable {name!r} ({did_you_mean(name, CALLABLES)}"
            f"known: {', '.join(CALLABLES)})"
        )
    if not action.min_args <= len(args) <= action.max_args:
        raise _LineError(
            f"{name} takes {_arity(action)}, got {len(args)} (usage: {action.usage})"
        )
    if has_peers and not action.peers:
        raise _LineError(f"{name} does not take a peer set (usage: {action.usage})")
    if action.check is not None:
        try:
            action.check(args)
        except ConfigError as exc:
            raise _LineError(f"{name}: {exc}") from None


def _arity(action: Action) -> str:
    if action.min_args == action.max_args:
        count = action.min_args
        return "no arguments" if count == 0 else f"{count} argument{'s' * (count > 1)}"
    return f"{action.min_args} to {action.max_args} arguments"


class _Reader:
    """Reads a scenario and its includes, collecting lines and every problem."""

    def __init__(self, variables: Mapping[str, str], instances: int | None) -> None:
        self.variables = variables
        self.instances = instances
        self.entries: list[tuple[float | None, ScenarioLine]] = []
        self.texts: list[str] = []
        self.problems: list[str] = []

    def read(self, path: Path, stack: tuple[Path, ...], where: str | None) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            at = where or f"{path}:1"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problems.append(f"{at}: cannot read scenario {path}: {reason} (check the path; "
                                 "it is relative to the file that names it)")
            return
        self.texts.append(text)
        stack = (*stack, path.resolve())
        for number, raw in enumerate(text.splitlines(), start=1):
            source = f"{path}:{number}"
            try:
                self._line(path, raw, source, stack)
            except _LineError as exc:
                self.problems.append(f"{source}: {exc}")

    def _line(self, path: Path, raw: str, source: str, stack: tuple[Path, ...]) -> None:
        tokens = _tokenize(raw)
        if not tokens:
            return
        if tokens[0].startswith("&"):
            self._include(path, tokens, source, stack)
            return
        if not tokens[0].startswith("@"):
            raise _LineError(
                f"{tokens[0]!r}: a line starts with a time such as @0:30 or @!, with &include, "
                "or with # for a comment (add the time)"
            )
        tokens = [_substitute(token, self.variables) for token in tokens]
        time = _parse_time(tokens[0])
        if len(tokens) < 2:
            raise _LineError(f"{tokens[0]} names no callable (add one: {', '.join(CALLABLES)})")
        peers: tuple[int, ...] | None = None
        if len(tokens) > 2 and _is_peers(tokens[-1]):
            peers = _parse_peers(tokens.pop(), self.instances)
        name, args = tokens[1], tuple(tokens[2:])
        _check_call(name, args, peers is not None)
        self.entries.append((time, ScenarioLine(time, name, args, peers, source)))

    def _include(self, path: Path, tokens: list[str], source: str, stack: tuple[Path, ...]) -> None:
        if tokens[0] != "&include":
            raise _LineError(f"unknown directive {tokens[0]!r} (the only one is &include FILE)")
        if len(tokens) != 2:
            raise _LineError("&include takes one file name (usage: &include FILE)")
        target = path.parent / _substitute(tokens[1], self.variables)
        if target.resolve() in stack:
            chain = " -> ".join(p.name for p in (*stack, target.resolve()))
            raise _LineError(f"include cycle {chain} (remove one of these &include lines)")
        self.read(target, stack, source)

    def ordered(self) -> tuple[ScenarioLine, ...]:
        keyed = []
        previous = 0.0
        for order, (time, line) in enumerate(self.entries):
            previous = previous if time is None else time
            keyed.append((previous, order, line))
        keyed.sort(key=lambda item: (item[0], item[1]))
        return tuple(line for _, _, line in keyed)


def _after_end(lines: tuple[ScenarioLine, ...]) -> list[str]:
    ends = [i for i, line in enumerate(lines) if line.callable == "end"]
    if not ends:
        return []
    end = lines[ends[0]]
    return [
        f"{line.source}: this line runs after `end` at {end.source} and would never run "
        "(move it before the end, or remove it)"
        for line in lines[ends[0] + 1:]
    ]


def read_scenario(
    path: Path, variables: Mapping[str, str] | None = None, *, instances: int | None = None
) -> ParsedScenario:
    """Read a scenario file and its includes; every problem is collected, none is raised."""
    reader = _Reader(variables or {}, instances)
    reader.read(Path(path), (), None)
    lines = reader.ordered()
    problems = reader.problems + _after_end(lines)
    return ParsedScenario(lines, tuple(reader.texts), tuple(problems))


def load_scenario(
    path: Path, variables: Mapping[str, str] | None = None, *, instances: int | None = None
) -> tuple[ScenarioLine, ...]:
    """The lines of a valid scenario in execution order; ConfigError listing every problem."""
    parsed = read_scenario(path, variables, instances=instances)
    if parsed.problems:
        raise ConfigError(f"scenario {path} is invalid:\n  " + "\n  ".join(parsed.problems))
    return parsed.lines
