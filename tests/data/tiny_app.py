"""A tiny aiohttp subject for the runner's tests; --mode selects how it misbehaves."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiohttp import web


def build_app(state_dir: Path) -> web.Application:
    log = state_dir / "access.log"

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hello(request: web.Request) -> web.Response:
        with open(log, "a", encoding="utf-8") as handle:  # storage writes for the sampler
            handle.write(f"{time.time()} GET /hello\n")
        return web.Response(text="hello " * 20)

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(3):
            await response.write(b"x" * 100)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"got": await request.text()})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "0.2")))
        return web.Response(text="late")

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"items": [{"state": "complete", "count": 3}]})

    async def shutdown(request: web.Request) -> web.Response:
        asyncio.get_running_loop().call_later(0.05, os._exit, 0)
        return web.Response(text="bye")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="no")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/hello", hello)
    app.router.add_get("/chunked", chunked)
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/fail", fail)
    app.router.add_get("/status", status)
    app.router.add_put("/shutdown", shutdown)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--mode", default="normal",
                        choices=["normal", "exit", "never-ready", "ignore-term", "spawn-child",
                                 "daemon", "die-soon"])
    parser.add_argument("--keepalive", type=float, default=75.0,
                        help="seconds an idle keep-alive connection stays open")
    args = parser.parse_args()
    state_dir = Path(args.state_dir)
    if os.environ.get("TINY_PRINT_ENV"):  # for the secrets test: what the subject was given
        print(f"environment: {sorted(os.environ.items())}", flush=True)
    print(f"tiny starting (mode {args.mode}, peers {os.environ.get('TINY_PEERS', '')})", flush=True)
    if args.mode == "exit":
        print("tiny: giving up at once", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.mode == "never-ready":
        while True:
            time.sleep(0.1)
    if args.mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.mode == "daemon":  # double fork + setsid: a daemon outside our group and session
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                (state_dir / "daemon.pid").write_text(str(os.getpid()))
                while True:
                    time.sleep(0.1)
            os._exit(0)
    if args.mode == "die-soon":  # ready, then dies on its own a moment later
        threading.Timer(0.6, os._exit, (7,)).start()
    if args.mode == "spawn-child":
        child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"])
        (state_dir / "child.pid").write_text(str(child.pid))
    web.run_app(build_app(state_dir), host="127.0.0.1", port=args.port,
                print=lambda *_: print(f"tiny ready on port {args.port}", flush=True),
                handle_signals=args.mode != "ignore-term", keepalive_timeout=args.keepalive)


if __name__ == "__main__":
    main()
