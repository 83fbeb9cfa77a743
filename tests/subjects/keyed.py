"""A tiny service that answers only requests carrying its API key (tests of headers).

Usage: python keyed.py PORT. The key comes from the environment variable KEYED_API_KEY; requests
without `X-Api-Key: <key>` get 401, readiness included. POST /items echoes the body's length.
"""

import http.server
import os
import sys

KEY = os.environ["KEYED_API_KEY"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _allowed(self) -> bool:
        if self.headers.get("X-Api-Key") == KEY:
            return True
        print("refused", self.command, self.path, flush=True)
        self._answer(401, b"no key")
        return False

    def do_GET(self):
        if self._allowed():
            self._answer(200, b"ok")

    def do_POST(self):
        if self._allowed():
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            self._answer(201 if body.startswith(b"{") else 400, str(len(body)).encode())

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
