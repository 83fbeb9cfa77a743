"""The subject's lifecycle: N fresh instances on free ports, set up, started, awaited, stopped.

Every instance gets a fresh state directory and a free 127.0.0.1 port. All ports are allocated
before any instance starts, so each command can name its peers ({peers}). Output goes to one log
file per instance and stream; an instance that exits early, never becomes ready, or finds its port
taken raises SubjectError quoting the last lines of its log. `SubjectGroup` is a context manager:
whatever happens inside (an error, KeyboardInterrupt), every process tree is stopped on the way out.

This is the one lifecycle of subjects: `harness run`, `harness perf`, the instruction tier and the
benches start, watch and stop them through this module and harness.process. The subject's
environment is an allow list of the harness' own (harness.secrets.subject_environment: never a
token) plus what the experiment sets. While a round runs, `watch()` checks every instance is still
alive; an instance that exits without being asked is a death that makes the round invalid. Stopping
follows `[subject] stop`: an optional HTTP request, a signal, then SIGKILL with a warning; the step
that stopped each instance and how long it took are kept on the Instance.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness import probes as probes_mod
from harness.errors import SubjectError
from harness.experiment import Probes, Readiness, Subject, expand
from harness.process import StopOutcome, start_process, stop_process_tree, stop_sequence
from harness.secrets import redact, subject_environment

LOG_TAIL = 20
_POLL = 0.05
_WATCH = 0.2  # seconds between two liveness checks of a running round
# No proxies: an http_proxy in a CI agent's environment must not intercept loopback checks.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (checked by binding it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def log_tail(paths: Sequence[Path], lines: int = LOG_TAIL) -> str:
    """The last `lines` lines of each log file, labelled, for error messages."""
    parts = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        tail = text.splitlines()[-lines:]
        if tail:
            parts.append(redact(f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail)))
    return "\n".join(parts) if parts else "(the logs are empty)"


def is_python_command(subject: Subject, python: str) -> bool:
    """Whether the subject's command runs Python (probes can only be injected then)."""
    return probes_mod.is_python_command(subject.command, python, subject.python)


@dataclass
class Instance:
    """One running (or stopped) instance of the subject."""

    number: int  # 1-based
    port: int
    directory: Path  # holds state/, probes/ and the logs
    state_dir: Path
    probe_dir: Path
    stdout_path: Path
    stderr_path: Path
    process: subprocess.Popen | None = None
    returncode: int | None = None
    stopped: bool = False
    stopping: bool = False  # the harness asked it to stop (its exit is not a death)
    died: str | None = None  # why it counts as dead: exited on its own while the round ran
    stop_outcome: StopOutcome | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> list[Path]:
        return [self.stdout_path, self.stderr_path]


class SubjectGroup:
    """N instances of a subject; use as a context manager so teardown always happens."""

    def __init__(
        self,
        subject: Subject,
        *,
        probes: Probes,
        work_dir: Path,
        project_root: Path,
        python: str,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self.subject = subject
        self.probes = probes
        self.project_root = Path(project_root)
        self.python = python
        self.variables = dict(variables or {})
        self.warnings: list[str] = []
        self._handles: list[IO[Any]] = []
        ports = free_ports(subject.instances)
        self.instances = [
            self._layout(Path(work_dir), number, port)
            for number, port in enumerate(ports, start=1)
        ]

    @staticmethod
    def _layout(work_dir: Path, number: int, port: int) -> Instance:
        directory = work_dir / f"instance-{number}"
        state_dir, probe_dir = directory / "state", directory / "probes"
        for path in (state_dir, probe_dir):
            path.mkdir(parents=True, exist_ok=False)  # fresh: a leftover is a harness bug
        return Instance(number, port, directory, state_dir, probe_dir,
                        directory / "stdout.log", directory / "stderr.log")

    # -- placeholders and environment ------------------------------------------------------------

    def values(self, instance: Instance) -> dict[str, str]:
        """Placeholder values for one instance's commands."""
        peers = ",".join(f"127.0.0.1:{i.port}" for i in self.instances if i is not instance)
        return {
            **self.variables,
            "python": self.python,
            "port": str(instance.port),
            "state_dir": str(instance.state_dir),
            "instance": str(instance.number),
            "peers": peers,
            "out_dir": str(instance.directory),
        }

    def command(self, template: Sequence[str], instance: Instance) -> list[str]:
        values = self.values(instance)
        return list(expand(tuple(template), values))

    def environment(self, instance: Instance, *, probed: bool = True) -> dict[str, str]:
        values = self.values(instance)
        env = subject_environment()
        env.update({k: expand((v,), values)[0] for k, v in self.subject.env.items()})
        if not probed:  # setup commands: measured processes only get the probe hook
            return env
        env, warnings = probes_mod.probe_environment(
            self.probes, data_dir=instance.probe_dir, base_env=env,
            is_python=is_python_command(self.subject, self.python),
        )
        self.warnings.extend(w for w in warnings if w not in self.warnings)
        return env

    @property
    def cwd(self) -> Path:
        return self.project_root / self.subject.cwd if self.subject.cwd else self.project_root

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> SubjectGroup:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Run the setup commands, start every instance, and wait until each is ready."""
        for instance in self.instances:
            self._setup(instance)
        for instance in self.instances:
            self._launch(instance)
        deadline = time.monotonic() + self.subject.ready.timeout
        for instance in self.instances:
            self._await_ready(instance, deadline)

    def _setup(self, instance: Instance) -> None:
        for number, setup in enumerate(self.subject.setup, start=1):
            if setup.instances is not None and instance.number not in setup.instances:
                continue
            run_command(self.command(setup.command, instance), cwd=self.cwd,
                        env=self.environment(instance, probed=False), timeout=setup.timeout,
                        log=instance.directory / f"setup-{number}.log",
                        who=f"instance {instance.number}: [[subject.setup]] {number}")

    def _spawn(self, argv: list[str], instance: Instance, out: IO[Any], err: IO[Any], *,
               probed: bool = True):
        try:
            return start_process(argv, cwd=self.cwd, env=self.environment(instance, probed=probed),
                                 stdout=out, stderr=err)
        except OSError as exc:
            raise SubjectError(
                f"instance {instance.number}: cannot start {' '.join(argv)!r} in {self.cwd}: "
                f"{exc}. Check [subject] command and cwd."
            ) from exc

    def _launch(self, instance: Instance) -> None:
        if not port_is_free(instance.port):
            raise SubjectError(
                f"instance {instance.number}: port {instance.port} on 127.0.0.1 was taken by "
                f"another process before the subject started; stop whatever listens there, or "
                f"retry (ports are picked at random)."
            )
        argv = self.command(self.subject.command, instance)
        if self.subject.network == "loopback":  # its own loopback, reached through a relay
            from harness.netns import wrap

            argv = wrap(argv, instance.port)
        out = open(instance.stdout_path, "ab")  # pylint: disable=consider-using-with
        err = open(instance.stderr_path, "ab")  # pylint: disable=consider-using-with
        self._handles += [out, err]
        instance.process = self._spawn(argv, instance, out, err)

    def _await_ready(self, instance: Instance, deadline: float) -> None:
        assert instance.process is not None
        wait_until_ready(instance.process, self.subject.ready, url=instance.url,
                         logs=instance.logs, deadline=deadline,
                         who=f"instance {instance.number}", port=instance.port)

    # -- liveness ----------------------------------------------------------------------------------

    def _check(self, elapsed: float | None) -> None:
        for instance in self.instances:
            if instance.process is None or instance.stopping or instance.died:
                continue
            code = instance.process.poll()
            if code is not None and not instance.stopping:
                at = f" {elapsed:.1f} s into the round" if elapsed is not None else ""
                # the log's path from work/ on: --out is swapped in after the session
                log = Path(*instance.stdout_path.parts[-4:]).as_posix()
                instance.died = (f"instance {instance.number} exited with code {code}{at} "
                                 f"without being stopped (its log: .../{log})")

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Check every instance stays alive while inside (and once more at the end)."""
        begin = time.monotonic()
        halt = threading.Event()

        def loop() -> None:
            while not halt.wait(_WATCH):
                self._check(time.monotonic() - begin)

        watcher = threading.Thread(target=loop, name="liveness", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            halt.set()
            watcher.join()
            self._check(time.monotonic() - begin)

    def deaths(self) -> list[str]:
        """Why instances count as dead (exited while the round ran, not asked to); [] if none."""
        self._check(None)
        return [i.died for i in self.instances if i.died]

    def check_alive(self, numbers: Sequence[int] | None = None) -> None:
        """SubjectError when one of the given instances (default: all) died."""
        self._check(None)
        for instance in self.instances:
            if instance.died and (numbers is None or instance.number in numbers):
                raise SubjectError(f"{instance.died}.\n{log_tail(instance.logs)}")

    @property
    def log_dir(self) -> Path:
        return self.instances[0].directory.parent

    # -- stopping ----------------------------------------------------------------------------------

    def _shutdown_request(self, instance: Instance):
        stop = self.subject.stop
        if not stop.http:
            return None
        method, path = stop.method_path

        def send() -> None:
            http_request(instance.url + path, method=method, headers=stop.headers,
                         timeout=min(5.0, self.subject.stop_wait))

        return (f"http {method} {path}", send)

    def stop(self, numbers: Sequence[int] | None = None) -> None:
        """Stop the given instances (default: all) and their process trees; idempotent."""
        for instance in self.instances:
            if numbers is not None and instance.number not in numbers:
                continue
            if instance.process is not None and not instance.stopped:
                self._check(None)  # an exit before this call is a death, not a stop
                instance.stopping = True
                outcome = stop_sequence(
                    instance.process, timeout=self.subject.stop_wait,
                    first=self._shutdown_request(instance), signal_name=self.subject.stop.then)
                instance.stop_outcome = outcome
                instance.returncode = outcome.returncode
                if outcome.warning:
                    note = f"instance {instance.number}: {outcome.warning}"
                    self.warnings.append(note)
            instance.stopping = True
            instance.stopped = True
        if numbers is None:
            for handle in self._handles:
                handle.close()
            self._handles.clear()

    def probe_data(self, instance: Instance) -> dict[str, Any]:
        """What the probes wrote for one instance (call after stop)."""
        return probes_mod.collect_probe_data(instance.probe_dir)

    def instance(self, number: int) -> Instance:
        for instance in self.instances:
            if instance.number == number:
                return instance
        raise SubjectError(
            f"instance {number} does not exist: the subject has {len(self.instances)} instance(s)."
        )


def ready_request(url: str, ready: Readiness, timeout: float) -> bool:
    """One readiness request: True when `ready.method url` answers 2xx, or one of `ready.status`."""
    return http_ok(url, timeout=timeout, method=ready.method, headers=ready.headers,
                   status=ready.status)


def is_ready(ready: Readiness, url: str, logs: Sequence[Path], *,
             http_timeout: float = 1.0) -> bool:
    """Whether the readiness check passes now: the log pattern (if any), then the HTTP request."""
    if ready.log:
        pattern = re.compile(ready.log, re.MULTILINE)
        matched = False
        for path in logs:
            try:
                if pattern.search(path.read_text(encoding="utf-8", errors="replace")):
                    matched = True
                    break
            except OSError:
                continue
        if not matched:
            return False
    if ready.http:
        return ready_request(url + ready.http, ready, http_timeout)
    return True


def wait_until_ready(process: subprocess.Popen, ready: Readiness, *, url: str,
                     logs: Sequence[Path], deadline: float, who: str, port: int,
                     http_timeout: float | None = None, poll: float = _POLL,
                     timeout_hint: str = "raise [subject.ready] timeout or fix the readiness "
                                         "check") -> None:
    """Wait until `process` passes the readiness check; SubjectError quoting its log when it exits
    first or the deadline passes. `http_timeout` None: 1 s per request; else the time left
    (a readiness request that is retried would add a request to one run of the instruction tier).
    """
    total = max(0.0, deadline - time.monotonic())
    while True:
        code = process.poll()
        if code is not None:
            raise SubjectError(
                f"{who} exited with code {code} before it was ready (port {port}).\n"
                f"{log_tail(logs)}"
            )
        left = deadline - time.monotonic()
        per_request = 1.0 if http_timeout is None else max(1.0, left)
        if is_ready(ready, url, logs, http_timeout=per_request):
            return
        if time.monotonic() > deadline:
            answer = "/".join(map(str, ready.status)) if ready.status else "2xx"
            how = (f"{ready.method} {ready.http} answering {answer}" if ready.http
                   else f"log line /{ready.log}/")
            raise SubjectError(
                f"{who} was not ready within {total:.0f} s (waited for {how} on port "
                f"{port}); {timeout_hint}.\n{log_tail(logs)}"
            )
        time.sleep(poll)


def run_command(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path,
                timeout: float, who: str) -> None:
    """Run one preparing command (setup, seeding) to its end, logged; SubjectError when it fails
    or outlasts `timeout` (then its whole tree is stopped)."""
    with open(log, "ab") as handle:
        try:
            proc = start_process(argv, cwd=cwd, env=env, stdout=handle, stderr=handle)
        except OSError as exc:
            raise SubjectError(f"{who}: cannot start {' '.join(argv)!r} in {cwd}: {exc}. Check "
                               "the command and [subject] cwd.") from exc
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SubjectError(
                f"{who}: command {' '.join(argv)!r} did not finish within {timeout:g} s; raise "
                f"its timeout or make it faster.\n{log_tail([log])}"
            ) from None
        finally:
            stop_process_tree(proc, timeout=2.0)
    if code != 0:
        raise SubjectError(f"{who}: command {' '.join(argv)!r} exited with code {code}.\n"
                           f"{log_tail([log])}")


def http_request(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                 body: bytes | None = None, timeout: float = 1.0) -> tuple[int, bytes]:
    """(status, body) of one request to the subject, bypassing proxies; HTTP errors are statuses,
    connection errors raise OSError."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from exc


def http_ok(url: str, timeout: float = 1.0, *, method: str = "GET",
            headers: Mapping[str, str] | None = None, status: Sequence[int] = ()) -> bool:
    """True if `method url` answers 2xx (or one of `status`) within `timeout`; errors are False."""
    request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            code = response.status
    except urllib.error.HTTPError as exc:  # 4xx/5xx arrive as exceptions
        code = exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return code in status if status else 200 <= code < 300

