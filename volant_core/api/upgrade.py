"""WebSocket routes on the WSGI app: a resource accepts the upgrade, the server runs the session.

WSGI has no way to hand a connection over, so the server and the resources meet
half-way (ADR 14, ADR 24). For a WebSocket opening the server puts a
:class:`WebSocketUpgrade` in the environ (:data:`UPGRADE_KEY`). The request goes
through the middleware (allowlist, API key) and the resource like any other; the
resource does its checks, answering errors as plain HTTP, then calls
:meth:`WebSocketUpgrade.accept` with the session to run. Once the app returned,
the server (uvicorn, with the websockets library) completes the handshake and runs
the session in a thread of its own on a blocking :class:`WebSocket`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import falcon
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from volant_core.errors import ValidationError

log = logging.getLogger(__name__)

#: WSGI environ key of the :class:`WebSocketUpgrade` a request offers.
UPGRADE_KEY = "volant.websocket"
#: Seconds between keepalive pings (and the longest wait for their pong).
PING_INTERVAL_S = 20.0


class WebSocket(Protocol):
    """The blocking side of an accepted WebSocket that a session sees.

    Like :class:`websockets.sync.connection.Connection`: ``send`` raises
    :class:`websockets.exceptions.ConnectionClosed` once the connection is
    closed, and iterating ends when the peer closes it.
    """

    def send(self, message: bytes | str) -> None:
        """Send one binary (bytes) or text (str) message."""

    def __iter__(self) -> Iterator[bytes | str]:
        """The messages received, until the connection closes."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (nothing when already closed)."""


#: What runs on an accepted WebSocket; the connection is closed when it returns.
Session = Callable[[WebSocket], None]


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
        self.cleanup: Callable[[], None] = lambda: None  #: runs once the accepted connection is over

    def check(self) -> Response:
        """The ``101`` answer to this opening; :class:`ValidationError` (422) when it is not a valid
        WebSocket opening (no key, wrong version). Parsed once; call it before any other check.
        """
        if self._answer is None:
            # The server lets an invalid opening reach the app, so that it is answered like any
            # refusal (after the allowlist and the key); the websockets library tells what is wrong.
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
        the handshake could not be completed.
        """
        self.check()
        self.session = session
        self.cleanup = cleanup

    def run(self, websocket: WebSocket) -> None:
        """Run the accepted session on ``websocket`` until it ends, then close it and clean up."""
        assert self.session is not None, "run() of an upgrade no resource accepted"
        try:
            self.session(websocket)
        except Exception:
            log.exception("WebSocket session for %s failed", self._target)
            websocket.close(1011, "internal error; see the volantd log")
        else:
            websocket.close()
        finally:
            self.cleanup()


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
