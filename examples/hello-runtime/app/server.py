"""The workload of the hello-runtime example: a small HTTP service inside the guest.

GET / greets, GET /healthz answers while it runs, GET /openapi.json describes it, POST /reverse
(the runtime's action) answers with the text it was sent, reversed.
"""

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8000
OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "hello-runtime", "version": "0.1.0"},
    "paths": {
        "/": {"get": {"operationId": "greet", "responses": {"200": {"description": "a greeting"}}}},
        "/reverse": {
            "post": {
                "operationId": "reverse",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "the text, reversed"}},
            }
        },
    },
}


class Handler(BaseHTTPRequestHandler):
    """Answers the service's three paths with JSON."""

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            return self.answer(200, {"status": "ok"})
        if self.path == "/openapi.json":
            return self.answer(200, OPENAPI)
        self.answer(200, {"message": "hello from a runtime package", "hostname": socket.gethostname()})

    def do_POST(self):
        if self.path != "/reverse":
            return self.answer(404, {"error": f"no action at {self.path}"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.answer(200, {"reversed": str(body.get("text", ""))[::-1]})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
