"""A tiny HTTP subject for the bisect test: GET /work costs ITERATIONS loop steps.

The bisect test commits this file into a temporary git history and changes ITERATIONS in one
commit, so that commit alone makes every request cost more instructions.
"""

import argparse
import http.server
import signal
import sys

ITERATIONS = 2000


def work(n: int) -> int:
    total = 0
    for i in range(n):
        total = (total + i * i) % 1000003
    return total


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        if self.path not in ("/health", "/work"):
            self.send_error(404)
            return
        body = b"ok" if self.path == "/health" else str(work(ITERATIONS)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # valgrind writes its file on exit
    server = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
    server.serve_forever(poll_interval=3600)  # no idle wake-ups that depend on run length


if __name__ == "__main__":
    main()
