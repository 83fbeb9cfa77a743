"""Experiment definitions: the TOML schema as frozen dataclasses, loaded and validated in one place.

The TOML format is documented in docs/experiments.md. Durations are seconds, rates requests/s,
after unit parsing (harness.units). Placeholders in commands: {python} (the interpreter running
the harness, or the baseline environment's), {port}, {state_dir}, {instance} (1-based),
{peers} (host:port of the other instances, comma-separated), {out_dir}, and every [variables] key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError
from harness.secrets import register_secret
from harness.tomllines import KeyLines, KeyPath
from harness.units import parse_duration, parse_fraction, parse_rate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class SetupCommand:
    """A command run before the subject starts (e.g. seeding), for some or all instances."""

    command: tuple[str, ...]
    instances: tuple[int, ...] | None = None  # None: every instance
    timeout: float = 600.0


@dataclass(frozen=True)
class Readiness:
    """How to tell the subject is ready: an HTTP request answering as expected, or a log line."""

    http: str | None = "/health"
    log: str | None = None
    timeout: float = 60.0
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    status: tuple[int, ...] = ()  # (): any 2xx


@dataclass(frozen=True)
class StopSequence:
    """How to stop the subject: an optional HTTP request, then a signal, then SIGKILL.

    Each step waits `timeout` seconds for the whole process tree to exit before the next one.
    """

    http: str | None = None  # "PUT /shutdown" (method and path; GET when no method is given)
    headers: dict[str, str] = field(default_factory=dict)
    then: str = "SIGTERM"  # the signal sent after the request, or first when there is none
    timeout: float | None = None  # None: [subject] stop_timeout

    @property
    def method_path(self) -> tuple[str, str]:
        """("PUT", "/shutdown") from http."""
        assert self.http is not None
        method, _, path = self.http.strip().rpartition(" ")
        return (method.strip().upper() or "GET"), path


@dataclass(frozen=True)
class Subject:
    """The program under test and how to start, prepare and stop it."""

    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None  # relative to the project root; None: the project root
    setup: tuple[SetupCommand, ...] = ()
    instances: int = 1
    ready: Readiness = field(default_factory=Readiness)
    stop_timeout: float = 10.0
    python: bool | None = None  # None: detect (command starts with {python} or a python binary)
    # the subject's own environment in `harness perf` (harness.environments)
    interpreter: str | None = None  # `python = "3.10"` or a path; None: the harness' interpreter
    requirements: tuple[str, ...] = ()  # dependency files in the tree; (): detected
    install: tuple[tuple[str, ...], ...] = ()  # extra install commands, {python} = the env's
    prepare: tuple[tuple[str, ...], ...] = ()  # once per side and environment, cached
    network: str = "host"  # "loopback": a private network namespace, loopback only (Linux)
    stop: StopSequence = field(default_factory=StopSequence)

    @property
    def stop_wait(self) -> float:
        """Seconds each stop step waits for the subject to exit."""
        return self.stop.timeout if self.stop.timeout is not None else self.stop_timeout


@dataclass(frozen=True)
class Endpoint:
    """One request the workload sends, with its share of the traffic."""

    path: str
    name: str
    method: str = "GET"
    weight: float = 1.0
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """The fixed-rate (open-loop) workload driven against one instance."""

    endpoints: tuple[Endpoint, ...]
    rates: tuple[float, ...]  # one rate, or a sweep: one step per rate
    arrival: Literal["constant", "poisson"] = "constant"
    requests: int | None = 1000  # per step; exactly one of requests and duration
    duration: float | None = None
    warmup: float = 2.0  # seconds of load before measuring (discarded)
    timeout: float = 10.0  # per request
    max_lag: float = 0.05  # driver lateness (p99 schedule lag) beyond which a run is invalid
    max_error_rate: float = 0.01  # subject errors above this fraction make the run invalid
    instance: int = 1  # which instance receives the load
    connections: int | None = None  # None: sized from the rate
    driver: Literal["harness", "jmeter"] = "harness"
    seed: int = 0  # for Poisson arrivals and endpoint choice
    jmx: str | None = None  # driver = "jmeter": the user's plan (else one is generated)


@dataclass(frozen=True)
class Probes:
    """Which probes run and how often they sample."""

    resources: bool = True
    resource_interval: float = 0.5
    sqlite: bool = False
    loop_lag: bool = False
    loop_lag_interval: float = 0.1
    flush_interval: float = 1.0
    project_roots: tuple[str, ...] = ()  # where the user's code lives; () = the subject's cwd
    skip_modules: tuple[str, ...] = ()  # module prefixes never named as a caller (own DB layer)
    project_modules: tuple[str, ...] = ()  # module prefixes that are the project where installed
    blocking: bool = False  # count blocking calls on the event-loop thread
    files: bool = False  # attribute Python-level file reads/writes to files by kind


@dataclass(frozen=True)
class MetricPolicy:
    """An experiment's override of a declared metric (harness.metrics.METRICS)."""

    gate: bool | None = None
    min_change: float | None = None


@dataclass(frozen=True)
class Rounds:
    """How many rounds `harness run` and `harness perf` do."""

    count: int = 1  # rounds per side for `harness run`
    perf_min: int = 6  # rounds per side before `harness perf` judges (see docs/statistics.md)
    perf_budget: float = 300.0  # wall seconds of a whole `harness perf` session (statistics.md)
    calibration: bool = False  # time a machine-speed workload around each round (statistics.md)


@dataclass(frozen=True)
class InstructionTier:
    """The valgrind instruction-count tier (harness.instructions)."""

    enabled: bool = False
    tool: Literal["cachegrind", "callgrind"] = "cachegrind"
    requests: int = 50  # fixed closed-loop sequence length per endpoint
    min_change: float = 0.01


@dataclass(frozen=True)
class ScenarioLine:
    """One timed line of a Gumby scenario: at `time` seconds, `instances` call `callable`."""

    time: float | None  # None for `@!` (run at once, when reached)
    callable: str
    args: tuple[str, ...]
    instances: tuple[int, ...] | None  # None: all instances
    source: str  # "file:line" for messages


@dataclass(frozen=True)
class Experiment:
    """A validated experiment definition."""

    name: str
    path: str
    sha256: str  # of the TOML text and the scenario text, as read
    description: str
    subject: Subject
    workload: Workload | None
    probes: Probes
    rounds: Rounds
    metrics: dict[str, MetricPolicy]
    variables: dict[str, str]
    scenario: tuple[ScenarioLine, ...] = ()
    instructions: InstructionTier = field(default_factory=InstructionTier)


# --- placeholders -------------------------------------------------------------------------------

# filled in by the runner for each instance; every other {name} must be a [variables] key
RUNTIME_PLACEHOLDERS = ("python", "port", "state_dir", "instance", "peers", "out_dir",
                        "prepare_dir")
# filled in when the experiment is loaded: the folder holding the experiment file, so helper
# scripts next to it are found by both sides of a perf session
LOAD_PLACEHOLDERS = ("experiment_dir",)

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# {env:NAME}: the value of an environment variable, read when the experiment is loaded and
# treated as a secret from then on (harness.secrets.redact hides it in every output)
_ENV_PLACEHOLDER = re.compile(r"\{env:([^{}]*)\}")


def did_you_mean(word: str, choices: Iterable[str], *, prefix: str = "", suffix: str = "") -> str:
    """'did you mean "x"? ' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'did you mean "{prefix}{close[0]}{suffix}"? ' if close else ""


def placeholders(text: str) -> list[str]:
    """The {name} placeholders in a string, in order (other braces, e.g. JSON, are literal)."""
    return _PLACEHOLDER.findall(text)


def expand(template: tuple[str, ...], values: Mapping[str, str]) -> tuple[str, ...]:
    """Fill every {name} placeholder of a command from `values` (the runner's per-instance facts).

    Only `{identifier}` is a placeholder; any other brace is kept as written. A placeholder with no
    value raises ConfigError naming it.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(
                f"placeholder {{{name}}} has no value (known: "
                f"{', '.join('{' + k + '}' for k in sorted(values))})"
            )
        return str(values[name])

    return tuple(_PLACEHOLDER.sub(replace, arg) for arg in template)


def _fill_variables(text: str, variables: Mapping[str, str]) -> str:
    """Substitute [variables] now and keep the runtime placeholders for the runner."""
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


# --- value converters: each returns the value or raises ConfigError("what (how to fix)") ------


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {_show(value)} (put the value in quotes)")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {_show(value)} (write true or false)")
    return value


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        limits = f"{low} or more" if high is None else f"{low} to {high}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected a whole number, got {_show(value)} (write {limits})")
        if value < low or (high is not None and value > high):
            raise ConfigError(f"{value} is out of range (write {limits})")
        return value

    return convert


def _duration(value: Any) -> float:
    return parse_duration(value)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ConfigError(f"{_show(value)} must be above zero (e.g. \"10s\")")
    return seconds


def _choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in options:
            hint = did_you_mean(str(value), options)
            raise ConfigError(
                f"{_show(value)} is not one of {', '.join(options)} ({hint}write one of these)"
            )
        return str(value)

    return convert


def _arguments(value: Any) -> tuple[str, ...]:
    example = '["{python}", "-m", "app", "--port", "{port}"]'
    if not isinstance(value, list) or not value:
        raise ConfigError(f"expected a non-empty array of strings (write e.g. {example})")
    if not all(isinstance(arg, str) for arg in value):
        raise ConfigError(f"every argument must be a string (quote numbers, e.g. {example})")
    return tuple(value)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'expected an array of non-empty strings, got {_show(value)} '
                          f'(write e.g. ["src", "app"])')
    return tuple(value)


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(
            f'expected a table of strings, got {_show(value)} (write {{ KEY = "value" }})'
        )
    for key, item in value.items():
        if not isinstance(item, str):
            raise ConfigError(f'{key} = {_show(item)} is not a string (write {key} = "{item}")')
    return dict(value)


def _python(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ConfigError(f'expected true/false or an interpreter, got {_show(value)} (e.g. "3.10", '
                      f'"/usr/bin/python3.12" or true)')


def _paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'expected an array of file paths, got {_show(value)} '
                          f'(e.g. ["requirements.txt"])')
    return tuple(value)


def _commands(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f'expected an array of commands, got {_show(value)} '
                          f'(e.g. [["{{python}}", "scripts/prepare.py", "{{prepare_dir}}"]])')
    return tuple(_arguments(item) for item in value)


def _instance_numbers(value: Any) -> tuple[int, ...]:
    numbers = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(numbers, list) or not numbers or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in numbers
    ):
        raise ConfigError(f"expected instance numbers, got {_show(value)} (write e.g. [1, 2])")
    return tuple(sorted(set(numbers)))


def _http_path(value: Any) -> str:
    path = _string(value)
    if not path.startswith("/"):
        raise ConfigError(f"{path!r} must start with '/' (write \"/{path}\")")
    return path


def _regex(value: Any) -> str:
    pattern = _string(value)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"{pattern!r} is not a regular expression: {exc} (fix or escape it)"
        ) from None
    return pattern


def _method(value: Any) -> str:
    method = _string(value).upper()
    if method not in _METHODS:
        raise ConfigError(f"{value!r} is not an HTTP method (write one of {', '.join(_METHODS)})")
    return method


def _statuses(value: Any) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599
                             for v in values):
        raise ConfigError(f"expected an HTTP status or an array of them, got {_show(value)} "
                          f"(e.g. 200 or [200, 401])")
    return tuple(values)


def _body(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return _string(value)


def _rates(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError('expected a non-empty array of rates (write e.g. ["1/s", "2/s", "5/s"])')
    rates = tuple(parse_rate(item) for item in value)
    if len(set(rates)) != len(rates):
        raise ConfigError("a rate appears twice (each rate is one step of the sweep; remove one)")
    return rates


def _name(value: Any) -> str:
    name = _string(value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ConfigError(
            f"{name!r} is not a usable name: it names artifacts and files (use letters, digits, "
            "'.', '_' and '-', starting with a letter or digit)"
        )
    return name


_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _signal_name(value: Any) -> str:
    name = _string(value).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in _SIGNALS:
        raise ConfigError(f"{value!r} is not a signal the harness sends (write one of "
                          f"{', '.join(_SIGNALS)}; SIGKILL always comes last by itself)")
    return name


def _stop_request(value: Any) -> str:
    text = _string(value).strip()
    method, _, path = text.rpartition(" ")
    if not path.startswith("/") or (method and method.strip().upper() not in _METHODS):
        raise ConfigError(f"{value!r} is not METHOD /path (write e.g. \"PUT /shutdown\")")
    return f"{method.strip().upper() or 'GET'} {path}"


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


# --- the schema: every key of every table, declared once -----------------------------------------


@dataclass(frozen=True)
class Key:
    """One key an experiment table accepts: its type as the docs name it and its converter."""

    name: str
    type: str
    convert: Callable[[Any], Any] | None  # None: read by the table's own function


def _keys(*keys: Key) -> dict[str, Key]:
    return {key.name: key for key in keys}


SCHEMA: dict[str, dict[str, Key]] = {
    "": _keys(
        Key("name", "string", _name),
        Key("description", "string", _string),
        Key("scenario", "string (path)", _string),
        Key("variables", "table", None),
        Key("subject", "table", None),
        Key("workload", "table", None),
        Key("probes", "table", None),
        Key("rounds", "table", None),
        Key("instructions", "table", None),
        Key("metrics", "table", None),
    ),
    "subject": _keys(
        Key("command", "array of strings", _arguments),
        Key("env", "table of strings", _strings),
        Key("cwd", "string (path)", _string),
        Key("instances", "integer", _integer(1, 64)),
        Key("setup", "array", None),
        Key("ready", "table", None),
        Key("stop_timeout", "duration", _positive_duration),
        Key("python", "boolean or string (version or path)", _python),
        Key("requirements", "array of strings (paths)", _paths),
        Key("install", "array of commands", _commands),
        Key("prepare", "array of commands", _commands),
        Key("network", "string", _choice("host", "loopback")),
        Key("stop", "table", None),
    ),
    "subject.stop": _keys(
        Key("http", "string (METHOD /path)", lambda v: _stop_request(v)),
        Key("headers", "table of strings", _strings),
        Key("then", "string (signal)", lambda v: _signal_name(v)),
        Key("timeout", "duration", _positive_duration),
    ),
    "subject.setup": _keys(
        Key("command", "array of strings", _arguments),
        Key("instances", "array of integers", _instance_numbers),
        Key("timeout", "duration", _positive_duration),
    ),
    "subject.ready": _keys(
        Key("http", "string (path)", _http_path),
        Key("log", "string (regex)", _regex),
        Key("timeout", "duration", _positive_duration),
        Key("method", "string", _method),
        Key("headers", "table of strings", _strings),
        Key("status", "integer or array of integers", _statuses),
    ),
    "workload": _keys(
        Key("rate", "rate", parse_rate),
        Key("rates", "array of rates", _rates),
        Key("arrival", "string", _choice("constant", "poisson")),
        Key("requests", "integer", _integer(1)),
        Key("duration", "duration", _positive_duration),
        Key("warmup", "duration", _duration),
        Key("timeout", "duration", _positive_duration),
        Key("max_lag", "duration", _positive_duration),
        Key("max_error_rate", "percentage", parse_fraction),
        Key("instance", "integer", _integer(1)),
        Key("connections", "integer", _integer(1, 10_000)),
        Key("driver", "string", _choice("harness", "jmeter")),
        Key("jmx", "string (path)", _string),
        Key("seed", "integer", _integer(0)),
        Key("headers", "table of strings", _strings),
        Key("endpoints", "array of tables", None),
    ),
    "workload.endpoints": _keys(
        Key("name", "string", _string),
        Key("path", "string (path)", _string),  # checked once its placeholders are filled
        Key("method", "string", _method),
        Key("weight", "number", lambda v: _positive_number(v, "weight")),
        Key("body", "string or table", _body),
        Key("headers", "table of strings", _strings),
    ),
    "probes": _keys(
        Key("resources", "boolean", _boolean),
        Key("resource_interval", "duration", _positive_duration),
        Key("sqlite", "boolean", _boolean),
        Key("loop_lag", "boolean", _boolean),
        Key("loop_lag_interval", "duration", _positive_duration),
        Key("flush_interval", "duration", _positive_duration),
        Key("project_roots", "array of strings", _names),
        Key("skip_modules", "array of strings", _names),
        Key("project_modules", "array of strings", _names),
        Key("blocking", "boolean", _boolean),
        Key("files", "boolean", _boolean),
    ),
    "rounds": _keys(
        Key("count", "integer", _integer(1)),
        Key("perf_min", "integer", _integer(1)),
        Key("perf_budget", "duration", _duration),
        Key("calibration", "boolean", _boolean),
    ),
    "instructions": _keys(
        Key("enabled", "boolean", _boolean),
        Key("tool", "string", _choice("cachegrind", "callgrind")),
        Key("requests", "integer", _integer(1)),
        Key("min_change", "percentage", parse_fraction),
    ),
    "metrics.NAME": _keys(
        Key("gate", "boolean", _boolean),
        Key("min_change", "percentage", parse_fraction),
    ),
}


def _positive_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{what} must be a number above zero, got {_show(value)} (e.g. 1 or 2.5)")
    return float(value)


# --- reading tables -------------------------------------------------------------------------------


def _dotted(path: KeyPath) -> str:
    """subject.setup[1].timeout: array items counted from 1, as a reader counts them."""
    out = ""
    for part in path:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Problems:
    """Problems with one TOML file, each as "file:line: key: message (fix)"."""

    def __init__(self, file: str, lines: KeyLines) -> None:
        self.file = file
        self.lines = lines
        self.found: list[tuple[int, str]] = []

    def add(self, path: KeyPath, message: str) -> None:
        line = self.lines.line(path)
        where = f"{_dotted(path)}: " if path else ""
        self.found.append((line, f"{self.file}:{line}: {where}{message}"))

    def sorted(self) -> list[str]:
        return [text for _, text in sorted(self.found, key=lambda item: item[0])]


# keys that were once accepted, with what replaced them
RETIRED = {
    ("probes", "functions"): 'the "functions" probe is gone: which Python functions changed is '
                             "counted by the Python function profile that runs beside the "
                             "instruction tier (remove this key and set [instructions] enabled "
                             '= true; docs/metrics.md, "Which Python functions changed")',
}


def _read(problems: _Problems, path: KeyPath, data: Any, table: str) -> dict[str, Any] | None:
    """Convert the declared keys of one table; unknown keys and bad values become problems."""
    schema = SCHEMA[table]
    if not isinstance(data, dict):
        problems.add(path, f"expected a table, got {_show(data)} (write [{_dotted(path)}])")
        return None
    out: dict[str, Any] = {}
    for name, value in data.items():
        key = schema.get(name)
        if key is None and (table, name) in RETIRED:
            problems.add((*path, name), RETIRED[(table, name)])
        elif key is None:
            where = f"in [{_dotted(path)}]" if path else "at the top level"
            problems.add(
                (*path, name),
                f'unknown key "{name}" {where} ({did_you_mean(name, schema)}'
                f"known keys: {', '.join(schema)})",
            )
        elif key.convert is None:
            out[name] = value
        else:
            try:
                out[name] = key.convert(value)
            except ConfigError as exc:
                problems.add((*path, name), str(exc))
    return out


def _misspelt(raw: Mapping[str, Any], table: str, *names: str) -> bool:
    """Whether an unknown key of `raw` looks like one of `names` (already reported as a typo)."""
    unknown = [key for key in raw if key not in SCHEMA[table]]
    return any(difflib.get_close_matches(name, unknown, n=1, cutoff=0.6) for name in names)


def _template(
    problems: _Problems, path: KeyPath, text: str, variables: Mapping[str, str], *, runtime: bool
) -> str:
    """Check the placeholders of one string and fill in the variables (runtime ones stay)."""
    allowed = [*variables, *(RUNTIME_PLACEHOLDERS if runtime else ())]
    for name in placeholders(text):
        if name in allowed:
            continue
        if name in RUNTIME_PLACEHOLDERS:
            problems.add(path, f"{{{name}}} is only known when a command starts (use it in "
                               "subject.command, subject.env or subject.setup)")
        else:
            known = ", ".join("{" + n + "}" for n in allowed)
            hint = did_you_mean(name, allowed, prefix="{", suffix="}")
            problems.add(path, f"unknown placeholder {{{name}}} ({hint}known: {known}; "
                               "declare your own in [variables])")
    return _fill_environment(problems, path, _fill_variables(text, variables))


def _fill_environment(problems: _Problems, path: KeyPath, text: str) -> str:
    """Substitute {env:NAME} from the environment; each value becomes a secret to redact."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.add(path, f"{{env:{name}}}: not an environment variable name (write "
                               "{env:NAME} with letters, digits and '_')")
            return match.group(0)
        value = os.environ.get(name)
        if value is None:
            problems.add(path, f"{{env:{name}}}: environment variable {name} is not set (export "
                               "it, or in Jenkins bind it with withCredentials)")
            return match.group(0)
        register_secret(value)
        return value

    return _ENV_PLACEHOLDER.sub(replace, text)


def _variables(problems: _Problems, raw: Any, overrides: Mapping[str, str]) -> dict[str, str]:
    path: KeyPath = ("variables",)
    if not isinstance(raw, dict):
        problems.add(path, f'expected a table, got {_show(raw)} (write [variables], name = "x")')
        raw = {}
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.add((*path, name), "a variable name is letters, digits and '_' (rename it)")
        elif name in RUNTIME_PLACEHOLDERS:
            problems.add((*path, name), f"{{{name}}} is filled in by the runner (rename it)")
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[name] = str(value)
        else:
            problems.add((*path, name), f"expected a string, got {_show(value)} (quote the value)")
    for name, value in overrides.items():
        if name in out:
            out[name] = value
        elif name not in raw:
            known = ", ".join(sorted(raw)) or "none"
            problems.add(path, f"--set {name}={value}: no such variable ({did_you_mean(name, raw)}"
                               f"declare it in [variables] first; known: {known})")
    return out


def _setup(
    problems: _Problems, raw: Any, variables: Mapping[str, str], instances: int
) -> tuple[SetupCommand, ...]:
    path: KeyPath = ("subject", "setup")
    if not isinstance(raw, list):
        problems.add(path, 'expected an array of commands (write setup = [["{python}", "seed.py"]] '
                           "or [{ command = [...], instances = [1] }])")
        return ()
    out = []
    for index, item in enumerate(raw):
        where = (*path, index)
        if isinstance(item, list):
            try:
                fields: dict[str, Any] | None = {"command": _arguments(item)}
            except ConfigError as exc:
                problems.add(where, str(exc))
                continue
        else:
            fields = _read(problems, where, item, "subject.setup")
        if fields is None or "command" not in fields:
            if isinstance(item, dict) and "command" not in item:
                problems.add(where, 'no command (add command = ["{python}", "seed.py"])')
            continue
        fields["command"] = tuple(
            _template(problems, (*where, "command"), arg, variables, runtime=True)
            for arg in fields["command"]
        )
        for number in fields.get("instances") or ():
            if not 1 <= number <= instances:
                problems.add((*where, "instances"), f"instance {number} does not exist "
                                                    f"(subject.instances is {instances})")
        out.append(SetupCommand(**fields))
    return tuple(out)


def _readiness(problems: _Problems, raw: Any, variables: Mapping[str, str]) -> Readiness:
    path: KeyPath = ("subject", "ready")
    fields = _read(problems, path, raw, "subject.ready")
    if not fields:
        return Readiness()
    if "http" in fields:
        fields["http"] = _template(problems, (*path, "http"), fields["http"], variables,
                                   runtime=False)
    fields["headers"] = {
        name: _template(problems, (*path, "headers", name), value, variables, runtime=False)
        for name, value in fields.get("headers", {}).items()
    }
    if "http" in fields and "log" in fields:
        problems.add(("subject", "ready", "log"), "give http or log, not both (remove one)")
    elif "log" in fields:
        fields["http"] = None
    return Readiness(**fields)


def _subject(problems: _Problems, raw: Any, variables: Mapping[str, str]) -> Subject | None:
    path: KeyPath = ("subject",)
    if raw is None:
        problems.add((), 'no [subject] table (add [subject] with command = ["{python}", "-m", '
                         '"yourapp", "--port", "{port}"], the program to measure)')
        return None
    fields = _read(problems, path, raw, "subject")
    if fields is None:
        return None
    if "command" not in raw and not _misspelt(raw, "subject", "command"):
        problems.add(path, 'no command (add command = ["{python}", "-m", "yourapp", "--port", '
                           '"{port}"])')
    fields["command"] = tuple(
        _template(problems, (*path, "command"), arg, variables, runtime=True)
        for arg in fields.get("command", ())
    )
    fields["env"] = {
        name: _template(problems, (*path, "env", name), value, variables, runtime=True)
        for name, value in fields.get("env", {}).items()
    }
    if "cwd" in fields:
        fields["cwd"] = _template(problems, (*path, "cwd"), fields["cwd"], variables, runtime=False)
    if isinstance(fields.get("python"), str):
        fields["interpreter"] = _template(problems, (*path, "python"), fields.pop("python"),
                                          variables, runtime=False)
    for key in ("install", "prepare"):
        if key in fields:
            fields[key] = tuple(
                tuple(_template(problems, (*path, key, i), arg, variables, runtime=True)
                      for arg in command)
                for i, command in enumerate(fields[key]))
    if fields.get("network") == "loopback" and not sys.platform.startswith("linux"):
        problems.add((*path, "network"), f'"loopback" needs Linux network namespaces, and this '
                                         f'is {sys.platform} (remove the key on this platform)')
    if "prepare" not in raw and "{prepare_dir}" in repr(raw):
        problems.add(path, "{prepare_dir} is used but there is no prepare step (add prepare = "
                           '[["{python}", "prepare.py", "{prepare_dir}"]] or drop it)')
    instances = fields.get("instances", 1)
    if "setup" in fields:
        fields["setup"] = _setup(problems, fields["setup"], variables, instances)
    if "ready" in fields:
        fields["ready"] = _readiness(problems, fields["ready"], variables)
    if "stop" in fields:
        fields["stop"] = _stop(problems, fields["stop"], variables)
    return Subject(**fields)


def _stop(problems: _Problems, raw: Any, variables: Mapping[str, str]) -> StopSequence:
    path: KeyPath = ("subject", "stop")
    if isinstance(raw, str):  # stop = "SIGINT": a signal alone
        try:
            return StopSequence(then=_signal_name(raw))
        except ConfigError as exc:
            problems.add(path, str(exc))
            return StopSequence()
    fields = _read(problems, path, raw, "subject.stop")
    if not fields:
        return StopSequence()
    if "http" in fields:
        fields["http"] = _template(problems, (*path, "http"), fields["http"], variables,
                                   runtime=False)
    if "headers" in fields:
        fields["headers"] = {
            name: _template(problems, (*path, "headers", name), value, variables, runtime=False)
            for name, value in fields["headers"].items()
        }
        if "http" not in fields:
            problems.add((*path, "headers"), "headers go with http (add http = \"PUT /shutdown\" "
                                             "or remove headers)")
    return StopSequence(**fields)


def _endpoint(
    problems: _Problems, index: int, raw: Any, variables: Mapping[str, str]
) -> Endpoint | None:
    path: KeyPath = ("workload", "endpoints", index)
    fields = _read(problems, path, raw, "workload.endpoints")
    if fields is None:
        return None
    if "path" not in fields:
        if "path" not in raw and not _misspelt(raw, "workload.endpoints", "path"):
            problems.add(path, 'no path (add path = "/health", the request path)')
        return None
    for key in ("path", "body"):
        if key in fields:
            fields[key] = _template(problems, (*path, key), fields[key], variables, runtime=False)
    try:
        _http_path(fields["path"])
    except ConfigError as exc:
        problems.add((*path, "path"), str(exc))
    fields["headers"] = {
        name: _template(problems, (*path, "headers", name), value, variables, runtime=False)
        for name, value in fields.get("headers", {}).items()
    }
    if "body" in fields and isinstance(raw.get("body"), dict):
        fields["headers"].setdefault("Content-Type", "application/json")
    fields.setdefault("name", fields["path"])
    return Endpoint(**fields)


def _endpoints(
    problems: _Problems, raw: Any, variables: Mapping[str, str]
) -> tuple[Endpoint, ...]:
    path: KeyPath = ("workload", "endpoints")
    if not isinstance(raw, list) or not raw:
        problems.add(path if raw is not None else ("workload",),
                     'no endpoints (add [[workload.endpoints]] with path = "/health")')
        return ()
    endpoints = [_endpoint(problems, i, item, variables) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for index, endpoint in enumerate(endpoints):
        if endpoint is not None and endpoint.name in seen:
            problems.add((*path, index, "name"), f'name "{endpoint.name}" is used twice '
                                                 "(give each endpoint its own name)")
        elif endpoint is not None:
            seen.add(endpoint.name)
    return tuple(e for e in endpoints if e is not None)


def _one_of(problems: _Problems, given: dict[str, Any], first: str, second: str, fix: str) -> bool:
    """Exactly one of two keys is written; True when that holds."""
    if first in given and second in given:
        problems.add(("workload", second), f"give {first} or {second}, not both ({fix})")
        return False
    if first not in given and second not in given:
        if _misspelt(given, "workload", first, second):
            return False
        problems.add(("workload",), f"no {first} or {second} ({fix})")
        return False
    return True


def _workload(
    problems: _Problems, raw: Any, variables: Mapping[str, str], instances: int
) -> Workload | None:
    fields = _read(problems, ("workload",), raw, "workload")
    if fields is None:
        return None
    sweep = 'rate = "5/s" for one rate, rates = ["1/s", "5/s"] for a sweep'
    if _one_of(problems, raw, "rate", "rates", sweep) and "rate" in fields:
        fields["rates"] = (fields.pop("rate"),)
    if _one_of(problems, raw, "requests", "duration",
               'requests = 200 for a count per step, duration = "40s" for a time per step'):
        fields.setdefault("requests", None)
    fields["endpoints"] = _endpoints(problems, fields.get("endpoints"), variables)
    common = {
        name: _template(problems, ("workload", "headers", name), value, variables, runtime=False)
        for name, value in fields.pop("headers", {}).items()
    }
    if common:  # every endpoint sends them; its own headers win
        fields["endpoints"] = tuple(dataclasses.replace(e, headers={**common, **e.headers})
                                    for e in fields["endpoints"])
    if not 1 <= fields.get("instance", 1) <= instances:
        problems.add(("workload", "instance"), f"instance {fields['instance']} does not exist "
                                               f"(subject.instances is {instances})")
    if "rates" not in fields or not fields["endpoints"]:
        return None
    fields.pop("rate", None)
    return Workload(**fields)


def _jmeter_plan(problems: _Problems, path: Path, workload: Workload | None, *,
                 has_scenario: bool) -> Workload | None:
    """The JMeter settings agree: a plan only for JMeter, found next to the experiment."""
    if workload is None:
        return None
    if workload.jmx is not None and workload.driver != "jmeter":
        problems.add(("workload", "jmx"), 'a JMeter plan needs driver = "jmeter" (add it, or '
                                          'remove jmx)')
    if workload.driver == "jmeter" and has_scenario:
        problems.add(("workload", "driver"), 'driver = "jmeter" runs plain rounds only, not a '
                                             'scenario (use the built-in driver, or drop scenario)')
    if workload.jmx is None:
        return workload
    plan = path.parent / workload.jmx
    if not plan.is_file():
        problems.add(("workload", "jmx"), f"no such JMeter plan: {plan} (the path is relative to "
                                          f"the experiment file)")
    return replace(workload, jmx=plan.as_posix())


def _simple(problems: _Problems, raw: Any, table: str, cls: type) -> Any:
    fields = _read(problems, (table,), raw, table) if raw is not None else {}
    return cls(**(fields or {}))


def _metrics(problems: _Problems, raw: Any, workload: Workload | None) -> dict[str, MetricPolicy]:
    """[metrics.NAME] tables; NAME may be "metric@endpoint" to judge one endpoint's value."""
    from harness.metrics import ENDPOINT_METRICS, METRICS, PROFILE_ENDPOINT_METRICS

    per_endpoint = tuple(dict.fromkeys(ENDPOINT_METRICS + PROFILE_ENDPOINT_METRICS))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(("metrics",), "expected tables such as [metrics.latency_mean] (write them so)")
        return {}
    out = {}
    endpoints = [e.name for e in workload.endpoints] if workload else []
    for name, policy in raw.items():
        metric, at, endpoint = name.partition("@")
        if at and metric in per_endpoint and endpoint not in endpoints:
            hint = did_you_mean(endpoint, endpoints)
            problems.add(("metrics", name), f'unknown endpoint "{endpoint}" ({hint}the '
                                            f'[[workload.endpoints]] names are '
                                            f'{", ".join(endpoints) or "none"})')
            continue
        if at and metric not in per_endpoint:
            problems.add(("metrics", name), f'"{metric}" is not measured per endpoint (those '
                                            f'are {", ".join(per_endpoint)})')
            continue
        if metric not in METRICS:
            hint = did_you_mean(name, METRICS)
            problems.add(("metrics", name), f'unknown metric "{name}" ({hint}the declared '
                                            "metrics are in docs/metrics.md)")
            continue
        fields = _read(problems, ("metrics", name), policy, "metrics.NAME")
        if fields is not None:
            out[name] = MetricPolicy(**fields)
    return out


# --- the whole file -------------------------------------------------------------------------------


def _parse_toml(path: Path, text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = found.group(1) if found else "1"
        reason = re.sub(r"\s*\(at .*\)$", "", str(exc))
        return None, f"{path}:{line}: {reason} (fix the TOML syntax; see docs/experiments.md)"


def _scenario(
    problems: _Problems, path: Path, name: str, variables: Mapping[str, str], instances: int
) -> tuple[tuple[ScenarioLine, ...], tuple[str, ...], list[str]]:
    from harness.scenario import read_scenario

    target = path.parent / name
    if not target.is_file():
        problems.add(("scenario",), f"scenario file {target} not found (the path is relative to "
                                    f"{path.name}; create it or fix the name)")
        return (), (), []
    parsed = read_scenario(target, variables, instances=instances)
    return parsed.lines, parsed.texts, list(parsed.problems)


def _what_runs(
    problems: _Problems, has_workload: bool, scenario: tuple[ScenarioLine, ...] | None
) -> list[str]:
    """The workload and the scenario must agree on what a round does."""
    calls = [line for line in scenario or () if line.callable == "workload"]
    if scenario is None and not has_workload:
        problems.add((), "nothing to run (add a [workload] table, or scenario = \"FILE\" that says "
                         "what happens in a round)")
    if scenario and has_workload and not calls:
        problems.add(("workload",), "the scenario never runs this workload (add a line such as "
                                    "`@0:00 workload` to the scenario, or remove [workload])")
    if not has_workload:
        return [f"{line.source}: `workload` needs a [workload] table in the experiment (add one, "
                "or remove this line)" for line in calls]
    return [f"{line.source}: `workload` runs once per round, and {calls[0].source} already "
            "starts it (remove this line)" for line in calls[1:]]


def _check(path: Path, overrides: Mapping[str, str]) -> tuple[Experiment | None, list[str]]:
    """Read and check an experiment; the experiment only when there is no problem at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [f"{path}:1: cannot read the experiment: {reason} (check the path)"]
    data, syntax = _parse_toml(path, text)
    if data is None:
        return None, [str(syntax)]
    problems = _Problems(str(path), KeyLines(text))
    top = _read(problems, (), data, "") or {}
    variables = _variables(problems, data.get("variables", {}), overrides)
    filled = {"experiment_dir": str(path.resolve().parent), **variables}
    subject = _subject(problems, data.get("subject"), filled)
    instances = subject.instances if subject else 1
    workload = None
    if "workload" in data:
        workload = _workload(problems, data["workload"], filled, instances)
        workload = _jmeter_plan(problems, path, workload, has_scenario="scenario" in top)
    scenario: tuple[ScenarioLine, ...] | None = None
    texts: tuple[str, ...] = ()
    later: list[str] = []
    if "scenario" in top:
        scenario, texts, later = _scenario(problems, path, top["scenario"], filled, instances)
    later += _what_runs(problems, "workload" in data, scenario)
    if workload is not None and workload.jmx and Path(workload.jmx).is_file():
        texts = (*texts, Path(workload.jmx).read_text(encoding="utf-8", errors="replace"))
    experiment = Experiment(
        name=top.get("name", path.stem),
        path=path.as_posix(),
        sha256=_digest(text, texts),
        description=top.get("description", ""),
        subject=subject,  # type: ignore[arg-type]  # only returned when not None
        workload=workload,
        probes=_simple(problems, data.get("probes"), "probes", Probes),
        rounds=_simple(problems, data.get("rounds"), "rounds", Rounds),
        metrics=_metrics(problems, data.get("metrics"), workload),
        variables=variables,
        scenario=scenario or (),
        instructions=_simple(problems, data.get("instructions"), "instructions", InstructionTier),
    )
    if experiment.instructions.enabled and (workload is None or not workload.endpoints):
        problems.add(("instructions", "enabled"), "the instruction tier sends requests to the "
                     "[workload] endpoints, and there are none (add [workload] with endpoints, "
                     "or set enabled = false)")
    if "name" not in top and "name" not in data:
        try:
            _name(path.stem)
        except ConfigError as exc:
            problems.add((), f"the file name gives the experiment's name: {exc}")
    found = problems.sorted() + later
    return (None if found else experiment), found


def _digest(toml_text: str, scenario_texts: tuple[str, ...]) -> str:
    digest = hashlib.sha256(toml_text.encode("utf-8"))
    for text in scenario_texts:
        digest.update(b"\0")
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()


def validate_experiment(path: Path, overrides: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of an experiment definition as "file:line: message (fix)"; [] when valid."""
    return _check(Path(path), overrides or {})[1]


def load_experiment(path: Path, overrides: Mapping[str, str] | None = None) -> Experiment:
    """The validated experiment, with --set overrides of [variables] applied.

    Raises ConfigError listing every problem, one per line.
    """
    experiment, problems = _check(Path(path), overrides or {})
    if experiment is None:
        count = f"{len(problems)} problem{'s' * (len(problems) != 1)}"
        raise ConfigError(f"{path}: {count}:\n  " + "\n  ".join(problems))
    return experiment
