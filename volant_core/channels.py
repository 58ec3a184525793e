"""Agent channels the core ships: a UNIX stream socket that leads to kestrel.

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
