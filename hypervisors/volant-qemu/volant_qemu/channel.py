"""The agent channel of a QEMU guest: the UNIX socket behind its ``volant.agent`` virtio-serial port."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass
class VirtioSerialChannel:
    """Implements :class:`volant_core.launch.AgentChannel` over QEMU's chardev socket.

    A serial port carries one byte stream: callers must serialise requests,
    hence ``exclusive``.
    """

    path: Path
    exclusive: bool = True

    def connect(self, timeout: float) -> socket.socket:
        """Return a socket connected to the port's host end, or raise ``OSError``."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        return sock

    def describe(self) -> str:
        """``virtio-serial:<socket path>``."""
        return f"virtio-serial:{self.path}"
