"""A test workload: ``/healthz`` answers 200 once a marker file exists; everything else is echoed.

Usage: ``python workload_app.py PORT READY_FILE``.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    """Answers ``/healthz`` and echoes every other request as JSON."""

    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Workload", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            ready = Path(sys.argv[2]).exists()
            self._reply(200 if ready else 503, {"ready": ready})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        echo = {
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "body": body,
            "headers": headers,
        }
        self._reply(201 if url.path == "/created" else 200, echo)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the workload's own startup line only."""


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"workload listening on {sys.argv[1]}", flush=True)
    server.serve_forever()
