"""`[subject] network = "loopback"`: the subject in a network namespace of its own (Linux).

The subject must not reach the network, yet the driver must reach the subject on 127.0.0.1. A
process in a private network namespace has a loopback interface of its own that the harness'
namespace cannot see, so this launcher bridges the two:

1. it binds the instance's port on the harness' 127.0.0.1 first (a socket keeps the namespace it
   was created in),
2. then moves itself into a new network namespace (inside a new user namespace when it is not
   privileged enough for a network namespace alone), brings that namespace's loopback up, and
   starts the subject there, which listens on the same port number on its own loopback,
3. and relays every connection accepted on the outer socket to the subject's port inside.

The subject sees only `lo`: no route to other hosts and no other service of this machine. Its
requests pass through the relay, one extra hop for both sides alike; the relay's CPU time is part
of the subject's process tree (this launcher is its parent). Signals to the launcher are passed to
the subject; the launcher exits with the subject's exit code.

Run as: python -E -m harness.netns PORT -- COMMAND...
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
UNAVAILABLE = 97  # exit code: no namespace could be made here
CHUNK = 65536


def wrap(argv: list[str], port: int) -> list[str]:
    """The command that runs `argv` in a private network namespace reachable on `port`."""
    return [sys.executable, "-E", "-m", "harness.netns", str(port), "--", *argv]


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def enter_private_network() -> None:
    """Move this process into a new network namespace whose loopback is up."""
    if not sys.platform.startswith("linux"):
        raise OSError("network namespaces exist on Linux only")
    try:
        _unshare(CLONE_NEWNET)  # enough with CAP_SYS_ADMIN
    except PermissionError:
        uid, gid = os.getuid(), os.getgid()
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)  # unprivileged: a user namespace owns it
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()


async def _relay(outer: socket.socket, port: int, child: subprocess.Popen) -> int:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            inner_reader, inner_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # not listening yet: the client sees the connection close
            writer.close()
            return
        await asyncio.gather(_pump(reader, inner_writer), _pump(inner_reader, writer))
        for stream in (writer, inner_writer):
            stream.close()

    server = await asyncio.start_server(connection, sock=outer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, child.send_signal, sig)
    try:
        while child.poll() is None:
            await asyncio.sleep(0.05)
    finally:
        server.close()
    return child.returncode


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        print("usage: python -E -m harness.netns PORT -- COMMAND...", file=sys.stderr)
        return 2
    port = int(args[0])
    outer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    outer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    outer.bind(("127.0.0.1", port))  # in the harness' namespace, before leaving it
    outer.listen(128)
    try:
        enter_private_network()
    except OSError as exc:
        print(f'harness: [subject] network = "loopback": cannot make a private network '
              f"namespace here ({exc}). It needs Linux with user namespaces allowed "
              f"(sysctl user.max_user_namespaces > 0; on Ubuntu also "
              f"kernel.apparmor_restrict_unprivileged_userns = 0) or CAP_SYS_ADMIN; or remove "
              f"the key.", file=sys.stderr, flush=True)
        return UNAVAILABLE
    child = subprocess.Popen(args[2:])  # pylint: disable=consider-using-with
    try:
        return asyncio.run(_relay(outer, port, child))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
