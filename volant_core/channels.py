"""Agent channels the core ships: a UNIX stream socket, or TCP, that leads to kestrel.

Hypervisor plugins whose agent channel is a UNIX socket on the host (QEMU's
virtio-serial chardev, kestrel running as a host process) reuse
:class:`UnixSocketChannel` instead of opening the socket themselves.
"""

from __future__ import annotations

import socket
from pathlib import Path


class UnixSocketChannel:
    """Implements :class:`volant_core.launch.AgentChannel` over a UNIX stream socket at ``path``.

    ``exclusive`` says whether the socket carries one connection at a time (a
    serial port behind it) so that callers serialise their requests.
    """

    def __init__(self, path: Path, *, exclusive: bool) -> None:
        """Connect to ``path``; ``exclusive`` as in :class:`~volant_core.launch.AgentChannel`."""
        self.path = path
        self.exclusive = exclusive

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, exclusive={self.exclusive})"

    def connect(self, timeout: float) -> socket.socket:
        """Return a socket connected to ``path`` (``timeout`` applies to connecting and to later I/O).

        Raises ``OSError`` when nothing listens there.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        return sock

    def describe(self) -> str:
        """``unix:<socket path>``."""
        return f"unix:{self.path}"


class TcpChannel:
    """kestrel over TCP (``host:port``): a guest NIC's address, or a port the hypervisor forwards.

    Not exclusive: every request may use a connection of its own.
    """

    exclusive = False

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def connect(self, timeout: float) -> socket.socket:
        """A connected TCP socket to kestrel; OSError when nothing answers."""
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def describe(self) -> str:
        """``tcp:<host>:<port>``."""
        return f"tcp:{self.host}:{self.port}"
