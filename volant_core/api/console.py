"""``GET /ws/v1/vms/{name}/console``: a VM's serial console over a WebSocket.

Bytes from the guest go to the client as binary messages; whatever the client
sends (text or binary) is written to the guest as it is. The session ends when
either side closes; when the VM stops, the client gets a normal close whose
reason says so.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence

import falcon
from websockets.exceptions import ConnectionClosed

from volant_core.api.models import ResourceName
from volant_core.api.openapi.operations import operation
from volant_core.api.security import origin_allowed
from volant_core.api.upgrade import WebSocket, upgrade_of
from volant_core.errors import ForbiddenError
from volant_core.orchestrator import Orchestrator
from volant_core.orchestrator.console import ConsoleSession
from volant_core.vm import check_name

#: Most bytes read from the console for one message.
CHUNK_BYTES = 4096
#: Close reason sent when the guest side of the console ends.
GUEST_CLOSED_REASON = "the console closed: the VM stopped"


def bridge(websocket: WebSocket, console: ConsoleSession) -> None:
    """Copy bytes both ways between ``websocket`` and ``console`` until either side ends."""

    def guest_to_client() -> None:
        with contextlib.suppress(OSError, ConnectionClosed):
            while data := console.socket.recv(CHUNK_BYTES):
                websocket.send(data)
            websocket.close(1000, GUEST_CLOSED_REASON)

    relay = threading.Thread(target=guest_to_client, name="console-out", daemon=True)
    relay.start()
    try:
        with contextlib.suppress(ConnectionClosed, OSError):
            for message in websocket:
                console.socket.sendall(message.encode() if isinstance(message, str) else message)
    finally:
        with contextlib.suppress(OSError):
            console.socket.shutdown(socket.SHUT_RDWR)
        relay.join()


class VMConsole:
    """The serial console of one VM, for ``volar vms console`` and browser terminals."""

    def __init__(self, orchestrator: Orchestrator, cors_origins: Sequence[str]) -> None:
        """Attach consoles through ``orchestrator``; pages from ``cors_origins`` may open them."""
        self.orchestrator = orchestrator
        self.cors_origins = tuple(cors_origins)

    @operation(status=101, errors=(403, 404, 409, 422, 502))
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: ResourceName) -> None:
        """Attach to the VM's serial console (WebSocket; one session at a time).

        Send ``Connection: Upgrade`` and ``Upgrade: websocket``. Guest output
        arrives as binary messages; text or binary messages are typed into the
        guest. A browser page must come from an origin in ``VOLANT_CORS_ORIGINS``.
        """
        upgrade = upgrade_of(req)
        origin = req.get_header("Origin")
        if origin is not None and not origin_allowed(origin, self.cors_origins):
            raise ForbiddenError(
                f"origin {origin} may not open consoles; add it to VOLANT_CORS_ORIGINS", field="Origin"
            )
        console = self.orchestrator.open_console(check_name(name))
        try:
            upgrade.accept(lambda websocket: bridge(websocket, console), cleanup=console.close)
        except Exception:
            console.close()
            raise
        resp.status = falcon.HTTP_101
