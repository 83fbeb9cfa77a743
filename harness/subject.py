"""The subject's lifecycle: N fresh instances on free ports, set up, started, awaited, stopped.

Every instance gets a fresh state directory and a free 127.0.0.1 port. All ports are allocated
before any instance starts, so each command can name its peers ({peers}). Output goes to one log
file per instance and stream; an instance that exits early, never becomes ready, or finds its port
taken raises SubjectError quoting the last lines of its log. `SubjectGroup` is a context manager:
whatever happens inside (an error, KeyboardInterrupt), every process tree is stopped on the way out.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness import probes as probes_mod
from harness.errors import SubjectError
from harness.experiment import Probes, Subject, expand
from harness.process import start_process, stop_process_tree

LOG_TAIL = 20
_POLL = 0.05
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
            parts.append(f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(parts) if parts else "(the logs are empty)"


def is_python_command(subject: Subject, python: str) -> bool:
    """Whether the subject's command runs Python (probes can only be injected then)."""
    if subject.python is not None:
        return subject.python
    first = subject.command[0] if subject.command else ""
    return first in ("{python}", python) or Path(first).name.lower().startswith("python")


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
        env = dict(os.environ)
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
            argv = self.command(setup.command, instance)
            log = instance.directory / f"setup-{number}.log"
            with open(log, "ab") as handle:
                proc = self._spawn(argv, instance, handle, handle, probed=False)
                try:
                    code = proc.wait(timeout=setup.timeout)
                except subprocess.TimeoutExpired:
                    raise SubjectError(
                        f"instance {instance.number}: setup command {' '.join(argv)!r} did not "
                        f"finish within {setup.timeout:g} s; raise [[subject.setup]] timeout or "
                        f"make it faster.\n{log_tail([log])}"
                    ) from None
                finally:
                    stop_process_tree(proc, timeout=self.subject.stop_timeout)
            if code != 0:
                raise SubjectError(
                    f"instance {instance.number}: setup command {' '.join(argv)!r} exited with "
                    f"code {code}.\n{log_tail([log])}"
                )

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
        ready = self.subject.ready
        pattern = re.compile(ready.log) if ready.log else None
        assert instance.process is not None
        while True:
            code = instance.process.poll()
            if code is not None:
                raise SubjectError(
                    f"instance {instance.number} exited with code {code} before it was ready "
                    f"(port {instance.port}).\n{log_tail(instance.logs)}"
                )
            if self._is_ready(instance, pattern):
                return
            if time.monotonic() > deadline:
                answer = "/".join(map(str, ready.status)) if ready.status else "2xx"
                how = (f"{ready.method} {ready.http} answering {answer}" if ready.http
                       else f"log line /{ready.log}/")
                raise SubjectError(
                    f"instance {instance.number} was not ready within {ready.timeout:g} s "
                    f"(waited for {how} on port {instance.port}); raise [subject.ready] timeout "
                    f"or fix the readiness check.\n{log_tail(instance.logs)}"
                )
            time.sleep(_POLL)

    def _is_ready(self, instance: Instance, pattern: re.Pattern[str] | None) -> bool:
        if pattern is not None:
            for path in instance.logs:
                try:
                    if pattern.search(path.read_text(encoding="utf-8", errors="replace")):
                        return True
                except OSError:
                    continue
            if not self.subject.ready.http:
                return False
        ready = self.subject.ready
        if ready.http:
            return http_ok(instance.url + ready.http, method=ready.method, headers=ready.headers,
                           status=ready.status)
        return True

    def stop(self, numbers: Sequence[int] | None = None) -> None:
        """Stop the given instances (default: all) and their process trees; idempotent."""
        for instance in self.instances:
            if numbers is not None and instance.number not in numbers:
                continue
            if instance.process is not None and not instance.stopped:
                instance.returncode = stop_process_tree(
                    instance.process, timeout=self.subject.stop_timeout)
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

