"""Serving the WSGI app: a threaded stdlib server, one thread per connection.

A control plane answers tens of requests per second; what matters is that a
slow request (a proxied agent call, a stream) never blocks the others.
"""

from __future__ import annotations

import logging
import socketserver
import threading
from typing import IO, Any, cast
from wsgiref.headers import Headers
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

import falcon

from volant_core.api.security import redact_query_key
from volant_core.api.upgrade import UPGRADE_KEY, WebSocketUpgrade

log = logging.getLogger(__name__)

#: WSGI environ key holding the request target exactly as the client sent it (percent-encoding
#: kept), as uWSGI and mod_wsgi name it: ``PATH_INFO`` is decoded, so ``%2F`` there reads as ``/``.
RAW_TARGET_KEY = "REQUEST_URI"
#: WSGI environ key holding the client's connected socket (to notice a hang-up during a stream).
CLIENT_SOCKET_KEY = "volant.client_socket"


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False  # server_close() never waits for a connection: a stream (SSE) has no end
    allow_reuse_address = True


class _UpgradingServerHandler(ServerHandler):
    """Writes the app's response, or runs the WebSocket session a resource accepted instead."""

    request_handler: _RequestHandler
    headers: Headers | None  # set by start_response (typeshed does not declare it)

    def finish_response(self) -> None:
        upgrade = self.request_handler.upgrade
        if upgrade is None or upgrade.session is None:
            if upgrade is not None:  # a refused WebSocket: its clients read only HTTP/1.1 answers
                self.http_version = "1.1"
            super().finish_response()
            return
        try:
            upgrade.run(self.request_handler.connection)
        finally:
            self.close()

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if self.http_version == "1.1" and self.headers is not None:
            self.headers["Connection"] = "close"  # one request per connection, said the 1.1 way


class _RequestHandler(WSGIRequestHandler):
    """One request per connection; the raw target and any WebSocket upgrade offered go in the environ."""

    upgrade: WebSocketUpgrade | None = None

    def get_environ(self) -> dict[str, str]:
        environ = super().get_environ()
        extra = cast(dict[str, Any], environ)  # WSGI allows any value under a server's own keys
        extra[RAW_TARGET_KEY] = self.path
        extra[CLIENT_SOCKET_KEY] = self.connection
        headers = self.headers.items()
        if WebSocketUpgrade.requested(headers):
            self.upgrade = WebSocketUpgrade(self.path, headers)
            extra[UPGRADE_KEY] = self.upgrade
        return environ

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():  # parse_request sent the error answer
            return
        handler = _UpgradingServerHandler(
            cast(IO[bytes], self.rfile),
            cast(IO[bytes], self.wfile),
            self.get_stderr(),
            self.get_environ(),
            multithread=True,
        )
        handler.request_handler = self
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), redact_query_key(format % args))


class ApiServer:
    """The HTTP server of volantd, started in a background thread."""

    def __init__(self, app: falcon.App, host: str, port: int) -> None:
        self._server = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_RequestHandler
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
