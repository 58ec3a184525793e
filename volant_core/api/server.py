"""Serving the WSGI app: a threaded stdlib server, one thread per connection.

A control plane answers tens of requests per second; what matters is that a
slow request (a proxied agent call, a stream) never blocks the others.
"""

from __future__ import annotations

import logging
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon

from volant_core.api.security import redact_query_key

log = logging.getLogger(__name__)

#: WSGI environ key holding the request target exactly as the client sent it (percent-encoding
#: kept), as uWSGI and mod_wsgi name it: ``PATH_INFO`` is decoded, so ``%2F`` there reads as ``/``.
RAW_TARGET_KEY = "REQUEST_URI"


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False  # server_close() never waits for a connection: a stream (SSE) has no end
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, str]:
        environ: dict[str, str] = super().get_environ()
        environ[RAW_TARGET_KEY] = self.path
        return environ

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), redact_query_key(format % args))


class ApiServer:
    """The HTTP server of volantd, started in a background thread."""

    def __init__(self, app: falcon.App, host: str, port: int) -> None:
        self._server = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)
        self.app = app  # the WSGI application served

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when 0 was asked for)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close the socket."""
        self._server.shutdown()
        self._server.server_close()
