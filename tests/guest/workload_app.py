"""A test workload: ``/healthz`` answers 200 once a marker file exists; everything else is echoed
(the path as it was sent, percent-encoding kept), except:

* ``GET /stream/<gate>``: writes ``first`` (a line), waits until ``POST /release/<gate>`` (a
  request of its own), then writes ``rest`` and ends (chunked); ``timed out`` instead of ``rest``
  when no release comes within a few minutes; if its client closes the connection meanwhile, it
  stops waiting and remembers that;
* ``GET /held/<gate>``: a small answer with its Content-Length whose first line (``first``) is
  written at once and the second (``rest``) once the gate opens;
* ``POST /release/<gate>``: opens that gate;
* ``GET /hung-up/<gate>``: ``{"hung_up": true}`` once the client of ``/stream/<gate>`` closed early;
* ``POST /sha256``: reads the body (Content-Length) piece by piece and answers its SHA-256 and size;
* ``GET /big/<bytes>``: answers that many bytes (with their Content-Length, or chunked with
  ``?chunked``), as long as its client reads them; ``GET /big-written`` then tells how many it
  could write: ``{"bytes": N, "done": true}`` once that answer ended.

Usage: ``python workload_app.py PORT READY_FILE``. Only the standard library: it also runs in the guest.
"""

from __future__ import annotations

import hashlib
import json
import select
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

#: Longest wait of ``/stream/<gate>`` for its release (seconds).
GATE_TIMEOUT = 300.0
_gates: dict[str, threading.Event] = {}
_gates_lock = threading.Lock()
_hung_up: set[str] = set()
_big = {"bytes": 0, "done": True}
#: Size of each write of ``/big/<bytes>``.
_PIECE = 64 * 1024


def gate(name: str) -> threading.Event:
    """The gate called ``name`` (created closed on first use)."""
    with _gates_lock:
        return _gates.setdefault(name, threading.Event())


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

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, name: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b"first\n")
        deadline = time.monotonic() + GATE_TIMEOUT
        while not gate(name).wait(0.1):
            if select.select([self.connection], [], [], 0)[0]:  # the client sends nothing more: its end
                _hung_up.add(name)
                self.close_connection = True
                return
            if time.monotonic() > deadline:
                self._chunk(b"timed out\n")
                break
        else:
            self._chunk(b"rest\n")
        self.wfile.write(b"0\r\n\r\n")

    def _held(self, name: str) -> None:
        body = (b"first\n", b"rest\n")
        self.send_response(200)
        self.send_header("Content-Length", str(sum(map(len, body))))
        self.end_headers()
        self.wfile.write(body[0])
        gate(name).wait(GATE_TIMEOUT)
        self.wfile.write(body[1])

    def _sha256(self) -> None:
        left = int(self.headers.get("Content-Length") or 0)
        digest, size = hashlib.sha256(), 0
        while left:
            piece = self.rfile.read(min(left, 65536))
            if not piece:
                break
            digest.update(piece)
            size += len(piece)
            left -= len(piece)
        self._reply(200, {"sha256": digest.hexdigest(), "bytes": size})

    def _big_answer(self, size: int, chunked: bool) -> None:
        _big.update(bytes=0, done=False)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))))
        self.end_headers()
        try:
            while _big["bytes"] < size:
                piece = b" " * min(_PIECE, size - _big["bytes"])
                if chunked:
                    self._chunk(piece)
                else:
                    self.wfile.write(piece)
                _big["bytes"] += len(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            _big["done"] = True

    def _body(self) -> bytes:
        """The request's body, with its Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding") != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline().strip():
            pass
        return body

    def _special(self, path: str) -> bool:
        """Answer the streaming and hashing endpoints; False for any other path."""
        first, _, rest = path.strip("/").partition("/")
        if self.command == "GET" and first == "stream" and rest:
            self._stream(rest)
        elif self.command == "GET" and first == "held" and rest:
            self._held(rest)
        elif self.command == "POST" and first == "release" and rest:
            gate(rest).set()
            self._reply(200, {"released": rest})
        elif self.command == "GET" and first == "hung-up" and rest:
            self._reply(200, {"hung_up": rest in _hung_up})
        elif self.command == "POST" and path == "/sha256":
            self._sha256()
        elif self.command == "GET" and first == "big" and rest.isdigit():
            self._big_answer(int(rest), "chunked" in urlsplit(self.path).query)
        elif self.command == "GET" and path == "/big-written":
            self._reply(200, _big)
        else:
            return False
        return True

    def _handle(self) -> None:
        url = urlsplit(self.path)
        if self._special(url.path):
            return
        if url.path == "/healthz":
            ready = Path(sys.argv[2]).exists()
            self._reply(200 if ready else 503, {"ready": ready})
            return
        body = self._body().decode()
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
