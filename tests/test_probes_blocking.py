"""Blocking calls on the event-loop thread: counted exactly, only on the loop, with their caller."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from harness.probes import diskio, loops
from harness.probes import sqlite as sqlite_probe
from harness.probes.summary import blocking_metrics

HERE = "tests/test_probes_blocking.py"


@pytest.fixture
def installed(tmp_path):
    """The blocking probe in this process with fresh counts; open and sqlite3 restored after."""
    import builtins
    import io

    saved = (builtins.open, io.open, time.sleep, {n: getattr(socket.socket, n)
                                                  for n in loops._SOCKET_METHODS})
    saved_sub = {n: getattr(subprocess, n) for n in ("run", "call", "check_call", "check_output")}
    loops.install()
    loops._wrap_subprocess(subprocess)  # already imported here: wrap it now
    sqlite_probe.install()
    diskio.install(str(tmp_path / "probes"), str(tmp_path / "state"), database=False)
    loops.BLOCKING.reset()
    yield loops.BLOCKING
    builtins.open, io.open, time.sleep, methods = saved
    for name, method in methods.items():
        setattr(socket.socket, name, method)
    for name, function in saved_sub.items():
        setattr(subprocess, name, function)
    sqlite_probe.uninstall()
    loops.BLOCKING.reset()


def _blocking_work(path) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("SELECT 1").fetchall()  # statement on the loop
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("x" * 100)  # 100 bytes on the loop
    time.sleep(0.01)
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())  # blocking connect: counted
    client.sendall(b"hello")  # blocking send: counted
    peer, _ = server.accept()
    assert peer.recv(5) == b"hello"
    for s in (client, peer, server):
        s.close()


def test_calls_on_the_loop_thread_are_counted_and_elsewhere_not(installed, tmp_path) -> None:
    _blocking_work(tmp_path / "outside.txt")  # not on a loop: nothing counted
    assert installed.snapshot()["kinds"] == {}

    async def handler() -> None:
        _blocking_work(tmp_path / "inside.txt")
        # the same work handed to a thread is off the loop
        await asyncio.get_running_loop().run_in_executor(
            None, _blocking_work, tmp_path / "thread.txt")

    asyncio.run(handler())
    snap = installed.snapshot()
    kinds = snap["kinds"]
    assert kinds["sqlite"]["calls"] == 1
    assert kinds["file_write"]["calls"] == 1 and kinds["file_write"]["bytes"] == 100
    assert kinds["sleep"]["calls"] == 1 and kinds["sleep"]["total"] >= 0.01
    assert kinds["subprocess"]["calls"] == 1  # run, not also the Popen.wait inside it
    assert kinds["socket"]["calls"] >= 4  # connect, sendall, accept, recv
    assert snap["longest"]["kind"] in ("subprocess", "sleep", "socket")
    assert all(s["where"].startswith(f"{HERE}:") for s in snap["sites"])
    metrics = blocking_metrics(snap, 2)
    assert metrics["loop_queries_per_request"] == 0.5
    assert metrics["loop_file_bytes_per_request"] == 50.0


def test_non_blocking_sockets_of_the_loop_are_not_counted(installed) -> None:
    async def echo() -> None:
        async def serve(reader, writer) -> None:
            writer.write(await reader.read(5))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        assert await reader.read(5) == b"hello"
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(echo())
    assert "socket" not in installed.snapshot()["kinds"]


def test_a_loop_in_another_thread_counts_for_that_thread_only(installed) -> None:
    done = threading.Event()

    def other_loop() -> None:
        async def main() -> None:
            time.sleep(0.001)
            done.set()

        asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    thread.join()
    time.sleep(0.001)  # the main thread runs no loop
    assert done.is_set()
    assert installed.snapshot()["kinds"]["sleep"]["calls"] == 1
    assert not loops.on_loop()


def _app_line(marker: str) -> int:
    from tests.probes_support import ROOT

    lines = (ROOT / "tests" / "data" / "twisted_app.py").read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.rstrip().endswith(marker))


@pytest.mark.integration
@pytest.mark.slow
def test_twisted_reactor_thread_blocking_and_defer_to_thread_origin(tmp_path) -> None:
    pytest.importorskip("twisted")
    from harness.experiment import Probes
    from harness.probes import collect_probe_data, mark_measuring
    from tests.probes_support import ROOT, free_port, get, probed_env, running

    data = tmp_path / "probes"
    env = probed_env(data, Probes(sqlite=True, blocking=True, flush_interval=60.0))
    port = free_port()
    command = [sys.executable, str(ROOT / "tests" / "data" / "twisted_app.py"), str(port),
               str(tmp_path / "t.db")]
    base = f"http://127.0.0.1:{port}"
    with running(command, env, ROOT, base + "/health", tmp_path / "out.log"):
        assert mark_measuring([data]) == []
        for _ in range(3):
            assert get(f"{base}/blocking") == b"10"
            assert get(f"{base}/threaded") == b"10"
    probes = collect_probe_data(data)
    assert "warnings" not in probes, probes.get("warnings")
    kinds = probes["blocking"]["kinds"]
    assert kinds["sqlite"]["calls"] == 3 and kinds["sleep"]["calls"] == 3  # reactor thread only
    app = "tests/data/twisted_app.py"
    (row,) = [r for r in probes["sqlite"]["statements"] if r["statement"].startswith("SELECT")]
    callers = {(c["where"], c["via"]): c["calls"] for c in row["callers"]}
    count_line = f"{app}:{_app_line('# twisted count')} count"
    assert callers[(count_line, "")] == 3  # on the reactor: the app's own function
    handoff = f"{app}:{_app_line('# twisted handoff')} Threaded.render_GET"
    assert callers[(handoff, count_line)] == 3  # deferToThread: the page that handed it off
    assert row["loop_calls"] == 3
