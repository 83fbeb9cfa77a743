"""`[subject] network = "loopback"`: the subject sees only its own loopback, the driver still
reaches it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from harness.experiment import validate_experiment

# Serves GET with what it could see at start: its interfaces and whether a server of the
# harness' namespace (OUTSIDE_PORT) answered.
APP = """\
import http.server, socket, sys
port, outside = int(sys.argv[1]), int(sys.argv[2])
try:
    socket.create_connection(("127.0.0.1", outside), timeout=2).close()
    reached = "reached"
except OSError:
    reached = "unreachable"
names = ",".join(sorted(name for _, name in socket.if_nameindex()))
print("interfaces", names, "outside", reached, flush=True)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = names.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

EXPERIMENT = """\
name = "isolated"

[variables]
outside = "0"

[subject]
command = ["{python}", "app.py", "{port}", "{outside}"]
network = "loopback"
ready = { http = "/", timeout = "20s" }
stop_timeout = "3s"

[workload]
rate = "50/s"
requests = 20
warmup = "0s"

[[workload.endpoints]]
path = "/"

[rounds]
count = 1
"""


def _namespaces_allowed() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    probe = ("from harness.netns import enter_private_network as e; e(); "
             "import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=30, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "['lo']"


def test_loopback_is_refused_where_there_are_no_network_namespaces(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    (tmp_path / "isolated.toml").write_text(EXPERIMENT)
    problems = validate_experiment(tmp_path / "isolated.toml")
    assert any("needs Linux network namespaces" in p for p in problems), problems


@pytest.mark.integration
@pytest.mark.skipif(not _namespaces_allowed(), reason="no network namespaces allowed here")
def test_the_subject_sees_only_its_loopback_and_is_still_measured(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "isolated.toml").write_text(EXPERIMENT)
    with socket.socket() as outside:  # a service of this machine the subject must not reach
        outside.bind(("127.0.0.1", 0))
        outside.listen(8)
        port = outside.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "run", "isolated.toml", "--out", "out", "--quiet",
             "--set", f"outside={port}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = "".join(p.read_text() for p in (tmp_path / "out").rglob("stdout.log"))
    assert "interfaces lo outside unreachable" in log, log
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(data["rounds"][0]["requests"]["status"]) == {200}  # reached through the relay
    # and without the key the same app reaches the outside service (the test can fail)
    (tmp_path / "isolated.toml").write_text(EXPERIMENT.replace('network = "loopback"\n', ""))
    with socket.socket() as outside:
        outside.bind(("127.0.0.1", 0))
        outside.listen(8)
        port = outside.getsockname()[1]
        subprocess.run([sys.executable, "-m", "harness", "run", "isolated.toml", "--out", "host",
                        "--quiet", "--set", f"outside={port}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True)
    log = "".join(p.read_text() for p in (tmp_path / "host").rglob("stdout.log"))
    assert "outside reached" in log, log


