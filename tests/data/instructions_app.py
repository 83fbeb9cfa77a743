"""A tiny HTTP subject for the instruction tier's tests: fixed work per request, plus EXTRA_WORK."""

import argparse
import http.server
import os
import signal
import sys

EXTRA_WORK = int(os.environ.get("EXTRA_WORK", "0"))  # extra loop iterations per /work request


def work(n: int) -> int:
    total = 0
    for i in range(n):
        total = (total + i * i) % 1000003
    return total


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real server

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        if self.path == "/health":
            body = b"ok"
        elif self.path == "/work":
            body = str(work(2000 + EXTRA_WORK)).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 (quiet: no timestamps in output)
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    with open(os.path.join(args.state_dir, "seed.txt"), encoding="utf-8") as handle:
        handle.read()
    # A clean exit on SIGTERM, so valgrind writes its output file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    # A long poll interval: no idle wake-ups whose number would depend on how long a run lasts.
    server.serve_forever(poll_interval=3600)


if __name__ == "__main__":
    main()
