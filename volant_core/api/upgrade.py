"""WebSocket routes on the WSGI app: a resource accepts the upgrade, the server runs the session.

WSGI has no way to hand a connection over, so the server and the resources meet
half-way (ADR 14). For a request that asks for ``Upgrade: websocket`` the server
puts a :class:`WebSocketUpgrade` in the environ (:data:`UPGRADE_KEY`). The request
goes through the middleware (allowlist, API key) and the resource like any other;
the resource does its checks, answering errors as plain HTTP, then calls
:meth:`WebSocketUpgrade.accept` with the session to run. Once the app returned,
the server sees the accepted upgrade, sends the ``101`` handshake itself instead
of the app's response, and runs the session on the connection (the websockets
library does the framing, pings and closing handshake).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable

import falcon
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.sync.connection import Connection

from volant_core.errors import ValidationError

log = logging.getLogger(__name__)

#: WSGI environ key of the :class:`WebSocketUpgrade` a request offers.
UPGRADE_KEY = "volant.websocket"
#: Seconds between keepalive pings, and the longest wait for the peer's closing handshake.
PING_INTERVAL_S = 20.0
CLOSE_TIMEOUT_S = 5.0

#: What runs on an accepted WebSocket; the connection is closed when it returns.
Session = Callable[[Connection], None]


class WebSocketUpgrade:
    """A request's ``Upgrade: websocket``; a resource accepts it with the session to run."""

    def __init__(self, target: str, headers: Iterable[tuple[str, str]]) -> None:
        """The upgrade offered by ``GET target`` with these HTTP ``headers``."""
        lines = [f"GET {target} HTTP/1.1", *(f"{key}: {value}" for key, value in headers), "", ""]
        self._head = "\r\n".join(lines).encode("latin-1", errors="replace")
        self._target = target
        self._protocol = ServerProtocol()
        self._answer: Response | None = None
        self.session: Session | None = None
        self._cleanup: Callable[[], None] = lambda: None

    @staticmethod
    def requested(headers: Iterable[tuple[str, str]]) -> bool:
        """Whether these request headers ask for a WebSocket."""
        return any(key.lower() == "upgrade" and "websocket" in value.lower() for key, value in headers)

    def check(self) -> Response:
        """The ``101`` answer to this opening; :class:`ValidationError` (422) when it is not a valid
        WebSocket opening (no key, wrong version). Parsed once; call it before any other check.
        """
        if self._answer is None:
            # The protocol parses the request itself, so that its parser then moves on to frames.
            self._protocol.receive_data(self._head)
            requests = [event for event in self._protocol.events_received() if isinstance(event, Request)]
            if not requests:
                raise ValidationError(
                    f"not a valid WebSocket opening request: {self._protocol.parser_exc}", field="headers"
                )
            self._answer = self._protocol.accept(requests[0])
        if self._answer.status_code != 101:
            reason = self._protocol.handshake_exc or self._answer.body.decode(errors="replace").strip()
            raise ValidationError(f"not a valid WebSocket opening handshake: {reason}", field="headers")
        return self._answer

    def accept(self, session: Session, *, cleanup: Callable[[], None] = lambda: None) -> None:
        """Switch protocols after the app returns, then run ``session``.

        ``cleanup`` runs once the connection is over, whether the session ran or
        the handshake could not be sent.
        """
        self._protocol.send_response(self.check())
        self.session = session
        self._cleanup = cleanup

    def run(self, sock: socket.socket) -> None:
        """Send the ``101`` answer on ``sock`` and run the accepted session until it ends."""
        assert self.session is not None, "run() of an upgrade no resource accepted"
        try:
            sock.sendall(b"".join(self._protocol.data_to_send()))
            connection = Connection(
                sock, self._protocol, ping_interval=PING_INTERVAL_S, close_timeout=CLOSE_TIMEOUT_S
            )
            try:
                self.session(connection)
            except Exception:
                log.exception("WebSocket session for %s failed", self._target)
                connection.close(1011, "internal error; see the volantd log")
            else:
                connection.close()
        finally:
            self._cleanup()


def upgrade_of(req: falcon.Request) -> WebSocketUpgrade:
    """The valid WebSocket upgrade ``req`` offers; 422 naming the header at fault otherwise."""
    upgrade = req.env.get(UPGRADE_KEY)
    if not isinstance(upgrade, WebSocketUpgrade):
        raise ValidationError(
            "this route speaks WebSocket: send `Connection: Upgrade` and `Upgrade: websocket` "
            "(e.g. use `volar vms console`)",
            field="Upgrade",
        )
    upgrade.check()
    return upgrade
