"""Subject lifecycle: fresh instances on free ports, readiness, every failure, no orphans."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace

import psutil
import pytest

from harness import subject as subject_mod
from harness.errors import SubjectError
from harness.experiment import Probes, Readiness, SetupCommand, StopSequence
from harness.subject import SubjectGroup, free_ports, port_is_free
from tests.data.tiny import (
    PYTHON,
    no_orphans,  # noqa: F401  (an autouse fixture)
    tiny_subject,
)

pytestmark = pytest.mark.integration


def _group(tmp_path, subject, **kwargs) -> SubjectGroup:
    return SubjectGroup(subject, probes=Probes(), work_dir=tmp_path / "round",
                        project_root=tmp_path, python=PYTHON, **kwargs)


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(port_is_free(p) for p in ports)


def test_instances_get_fresh_state_ports_and_their_peers(tmp_path):
    with _group(tmp_path, tiny_subject(instances=2)) as group:
        one, two = group.instances
        assert one.port != two.port
        assert one.state_dir != two.state_dir and one.state_dir.is_dir()
        assert subject_mod.http_ok(one.url + "/health") and subject_mod.http_ok(two.url + "/health")
        pids = [one.process.pid, two.process.pid]
    assert f"peers 127.0.0.1:{two.port})" in one.stdout_path.read_text()
    assert f"peers 127.0.0.1:{one.port})" in two.stdout_path.read_text()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_setup_commands_run_per_instance_before_start(tmp_path):
    write = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
    marker = ("{python}", "-c", write, "{state_dir}/seeded", "{instance}")
    subject = tiny_subject(instances=2, setup=(SetupCommand(marker, instances=(2,)),))
    with _group(tmp_path, subject) as group:
        one, two = group.instances
        assert not (one.state_dir / "seeded").exists()
        assert (two.state_dir / "seeded").read_text() == "2"


def test_setup_commands_do_not_get_the_probe_hook(tmp_path):
    write = ("import os, pathlib, sys; pathlib.Path(sys.argv[1]).write_text("
             "os.environ.get('PERF_PROBES', 'none') + ' ' + os.environ.get('PYTHONPATH', ''))")
    marker = ("{python}", "-c", write, "{out_dir}/setup-env")
    subject = tiny_subject(setup=(SetupCommand(marker),))
    group = SubjectGroup(subject, probes=Probes(sqlite=True), work_dir=tmp_path / "round",
                         project_root=tmp_path, python=PYTHON)
    with group as started:
        seen = (started.instances[0].directory / "setup-env").read_text()
        assert started.environment(started.instances[0])["PERF_PROBES"] == "sqlite"  # subject: yes
    assert seen.startswith("none") and "boot" not in seen  # setup: no


def test_a_failing_setup_command_quotes_its_log(tmp_path):
    failing = ("{python}", "-c", "import sys; print('seed: no such table'); sys.exit(4)")
    with pytest.raises(SubjectError, match=r"(?s)exited with code 4.*seed: no such table"):
        with _group(tmp_path, tiny_subject(setup=(SetupCommand(failing),))):
            pass


def test_a_setup_command_that_hangs_is_stopped(tmp_path):
    hanging = ("{python}", "-c", "import time\nwhile True: time.sleep(0.1)")
    with pytest.raises(SubjectError, match="did not finish within 0.5 s"):
        with _group(tmp_path, tiny_subject(setup=(SetupCommand(hanging, timeout=0.5),))):
            pass
    assert not [p for p in psutil.Process().children(recursive=True) if p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]


def test_a_subject_that_exits_at_once_is_an_error_quoting_its_log(tmp_path):
    with pytest.raises(SubjectError, match=r"(?s)exited with code 3.*giving up at once"):
        with _group(tmp_path, tiny_subject("exit")):
            pass


def test_a_subject_that_never_gets_ready_is_stopped(tmp_path):
    with pytest.raises(SubjectError, match=r"(?s)not ready within 1 s.*tiny starting"):
        with _group(tmp_path, tiny_subject("never-ready", timeout=1.0)):
            pass


def test_a_subject_that_ignores_sigterm_is_killed(tmp_path):
    with _group(tmp_path, tiny_subject("ignore-term", stop_timeout=0.5)) as group:
        instance = group.instances[0]
    assert instance.process.returncode is not None


def test_children_of_the_subject_are_stopped_too(tmp_path):
    with _group(tmp_path, tiny_subject("spawn-child")) as group:
        child = int((group.instances[0].state_dir / "child.pid").read_text())
        assert psutil.pid_exists(child)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def test_readiness_by_log_line(tmp_path):
    ready = Readiness(http=None, log=r"tiny ready on port \d+", timeout=20)
    with _group(tmp_path, tiny_subject(ready=ready)) as group:
        assert subject_mod.http_ok(group.instances[0].url + "/health")


def test_a_port_taken_before_start_is_reported(tmp_path, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(subject_mod, "free_ports", lambda n: [port] * n)
        with pytest.raises(SubjectError, match=f"port {port} on 127.0.0.1 was taken"):
            with _group(tmp_path, tiny_subject()):
                pass


def test_a_subject_that_cannot_bind_its_port_quotes_the_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        subject = tiny_subject()
        subject = type(subject)(**{**subject.__dict__, "command": tuple(
            str(port) if part == "{port}" else part for part in subject.command)})
        with pytest.raises(SubjectError, match=r"(?is)exited with code.*address already in use"):
            with _group(tmp_path, subject):
                pass


def test_an_interrupt_inside_the_block_stops_everything(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with _group(tmp_path, tiny_subject(instances=2)):
            raise KeyboardInterrupt


def test_probe_environment_is_asked_for_the_subject_environment(tmp_path, monkeypatch):
    calls = []

    def fake(probes, *, data_dir, base_env, is_python):
        calls.append((data_dir, is_python))
        return {**base_env, "TINY_PROBED": "1"}, ["probe: cannot inject here"]

    monkeypatch.setattr(subject_mod.probes_mod, "probe_environment", fake)
    with _group(tmp_path, tiny_subject()) as group:
        assert calls[0] == (group.instances[0].probe_dir, True)
    assert group.warnings == ["probe: cannot inject here"]


def test_variables_fill_placeholders(tmp_path):
    subject = tiny_subject()
    subject = type(subject)(**{**subject.__dict__, "env": {"TINY_PEERS": "db={db}"}})
    with _group(tmp_path, subject, variables={"db": "worker"}) as group:
        pass
    assert "peers db=worker)" in group.instances[0].stdout_path.read_text()


# -- the stop sequence, daemons, liveness, the environment -----------------------------------------


def _stopped(tmp_path, subject):
    with _group(tmp_path, subject) as group:
        (instance,) = group.instances
    return group, instance


def test_a_subject_that_stops_over_http_is_not_signalled_or_killed(tmp_path):
    stop = StopSequence(http="PUT /shutdown", headers={"X-Key": "k"}, timeout=5.0)
    group, instance = _stopped(tmp_path, replace(tiny_subject("ignore-term"), stop=stop))
    assert instance.stop_outcome.step == "http PUT /shutdown"
    assert instance.stop_outcome.warning is None and not group.warnings
    assert instance.returncode == 0  # it exited on its own: no SIGKILL
    assert instance.stop_outcome.to_json()["seconds"] < 5.0


def test_a_subject_that_never_stops_is_killed_with_a_warning(tmp_path):
    stop = StopSequence(http="PUT /missing", timeout=0.5)  # answered 404, still running
    group, instance = _stopped(tmp_path, replace(tiny_subject("ignore-term"), stop=stop))
    assert instance.stop_outcome.step == "SIGKILL"
    assert "http PUT /missing then SIGTERM" in instance.stop_outcome.warning
    assert any("killed with SIGKILL" in w for w in group.warnings)
    assert instance.stop_outcome.to_json()["warning"]


def test_a_subject_ignoring_sigterm_stops_on_the_configured_signal(tmp_path):
    stop = StopSequence(then="SIGINT", timeout=5.0)
    group, instance = _stopped(tmp_path, replace(tiny_subject("ignore-term"), stop=stop))
    assert instance.stop_outcome.step == "SIGINT" and not group.warnings


@pytest.mark.skipif(not hasattr(os, "fork"), reason="double fork + setsid is POSIX")
def test_a_daemonised_descendant_is_found_by_its_marker_and_stopped(tmp_path):
    with _group(tmp_path, tiny_subject("daemon")) as group:
        pid_file = group.instances[0].state_dir / "daemon.pid"
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        daemon = psutil.Process(int(pid_file.read_text()))
        assert os.getsid(daemon.pid) != os.getsid(group.instances[0].process.pid)
    assert not daemon.is_running() or daemon.status() == psutil.STATUS_ZOMBIE


def test_an_instance_that_dies_during_the_round_is_a_death(tmp_path):
    with _group(tmp_path, tiny_subject("die-soon", instances=2)) as group:
        with group.watch():
            time.sleep(1.5)
        deaths = group.deaths()
    assert len(deaths) == 2 and "exited with code 7" in deaths[0]


def test_an_instance_stopped_on_purpose_is_not_a_death(tmp_path):
    with _group(tmp_path, tiny_subject(instances=2)) as group:
        with group.watch():
            group.stop([2])
            time.sleep(0.5)
        assert group.deaths() == []


def test_the_subject_never_inherits_the_harness_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_marker_token_1")
    monkeypatch.setenv("JENKINS_TOKEN", "jenkins_marker_token_2")
    monkeypatch.setenv("SOME_CI_PASSWORD", "pw_marker_3")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    group = SubjectGroup(tiny_subject(), probes=Probes(loop_lag=True), work_dir=tmp_path / "r",
                         project_root=tmp_path, python=PYTHON)
    env = group.environment(group.instances[0])
    assert "GITHUB_TOKEN" not in env and "JENKINS_TOKEN" not in env
    assert "SOME_CI_PASSWORD" not in env
    assert env["LC_ALL"] == "C.UTF-8" and env["TINY_PEERS"] == "" and "PATH" in env
    assert "PYTHONPATH" in env  # the probes' startup hook still reaches the subject
