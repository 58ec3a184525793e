"""Attaching to a VM's serial console: one session at a time, as the hypervisor serves one client.

A hypervisor exposes the console as a UNIX stream socket (QEMU's socket chardev,
Cloud Hypervisor's ``--serial socket=``) that serves a single client: a second
one would hang unanswered until the first leaves. :class:`ConsoleAttachments`
turns that into a clear conflict for the second caller.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

from volant_core.errors import AgentError, ConflictError
from volant_core.orchestrator.locks import NamedLocks

#: Longest wait for the hypervisor to accept the console connection (seconds).
CONNECT_TIMEOUT_S = 5.0


class ConsoleSession:
    """An attached console: a connected stream socket; :meth:`close` frees the console for others."""

    def __init__(self, sock: socket.socket, release: Callable[[], None]) -> None:
        """Hold ``sock``; ``release`` gives the attachment back, called by :meth:`close`."""
        self.socket = sock
        self._release = release
        self._closed = False

    def close(self) -> None:
        """Close the socket and let the next session attach (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.socket.close()
        self._release()


class ConsoleAttachments:
    """Which VM consoles are attached; hands out at most one :class:`ConsoleSession` per VM."""

    def __init__(self) -> None:
        self._attached = NamedLocks(threading.Lock)  # held while a session is attached

    def attach(self, name: str, path: Path) -> ConsoleSession:
        """Connect to VM ``name``'s console socket at ``path``.

        ConflictError when another session holds it; AgentError (502) when the
        hypervisor does not accept the connection.
        """
        release = self._attached.try_hold(name)
        if release is None:
            raise ConflictError(
                f"the console of vm {name!r} is attached in another session; one session at a time "
                "(detach it with Ctrl-] first)"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect(str(path))
            sock.settimeout(None)
        except OSError as exc:
            sock.close()
            release()
            raise AgentError(f"cannot connect to the console of vm {name!r} at {path}: {exc}") from exc
        return ConsoleSession(sock, release)
