"""The agent channel of a Cloud Hypervisor guest: its hybrid vsock socket, with the core's lanes.

Host to guest, hybrid vsock is a UNIX socket: connect, send ``CONNECT <port>\\n``, read
``OK <host side port>\\n``, and the stream is the guest's listener on that vsock port (kestrel's, on
:data:`~volant_core.launch.AGENT_PORT`). One socket carries many connections, but the core's lane
convention still applies: at most :data:`~volant_core.launch.AGENT_LANES` at once, one of which the
agent client keeps for health probes (ADR 15), as over QEMU's serial ports.
"""

from __future__ import annotations

import socket
from pathlib import Path

from volant_core.launch import AGENT_LANES, AGENT_PORT
from volant_core.sdk import SerialLaneChannel

#: Longest handshake answer read (``OK 4294967295\n`` is 14 bytes).
MAX_ANSWER = 64


class HybridVsockError(ConnectionError):
    """The VMM's hybrid vsock socket refused the ``CONNECT`` (nothing listens on that guest port)."""


class HybridVsockChannel(SerialLaneChannel):
    """Implements :class:`volant_core.launch.AgentChannel` over a hybrid vsock socket: each lane is
    one connection to ``path`` handshaken to guest ``port``.
    """

    def __init__(self, path: Path, *, port: int = AGENT_PORT, lanes: int = AGENT_LANES) -> None:
        """The channel to guest vsock ``port`` through the hybrid vsock socket ``path``."""
        super().__init__((path,) * lanes)
        self.path = path
        self.port = port

    def __repr__(self) -> str:
        return f"HybridVsockChannel(path={self.path!r}, port={self.port}, lanes={self.lanes})"

    def connect(self, timeout: float) -> socket.socket:
        """A stream to the guest's ``port`` on a free lane (waiting up to ``timeout`` for one).

        Raises ``TimeoutError`` when no lane frees in time, :class:`HybridVsockError` when the
        guest refuses, ``OSError`` when the socket is gone.
        """
        sock = super().connect(timeout)
        try:
            sock.sendall(f"CONNECT {self.port}\n".encode())
            answer = _read_line(sock)
            if not answer.startswith(b"OK "):
                raise HybridVsockError(
                    f"hybrid vsock {self.path}: CONNECT {self.port} answered {answer[:MAX_ANSWER]!r}"
                )
        except BaseException:
            sock.close()
            raise
        return sock

    def describe(self) -> str:
        """``hybrid-vsock:<socket> port <port> (<n> lanes)``."""
        return f"hybrid-vsock:{self.path} port {self.port} ({self.lanes} lanes)"


def _read_line(sock: socket.socket) -> bytes:
    """One handshake line, read byte by byte so that nothing of the stream after it is consumed."""
    line = b""
    while not line.endswith(b"\n") and len(line) < MAX_ANSWER:
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line
