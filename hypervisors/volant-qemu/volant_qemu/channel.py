"""The agent channel of a QEMU guest: the UNIX socket behind its ``volant.agent`` virtio-serial port."""

from __future__ import annotations

from pathlib import Path

from volant_core.channels import UnixSocketChannel


class VirtioSerialChannel(UnixSocketChannel):
    """Implements :class:`volant_core.launch.AgentChannel` over QEMU's chardev socket.

    A serial port carries one byte stream: callers must serialise requests,
    hence always ``exclusive``.
    """

    def __init__(self, path: Path) -> None:
        """The channel to the host end of the port, the chardev socket at ``path``."""
        super().__init__(path, exclusive=True)

    def describe(self) -> str:
        """``virtio-serial:<socket path>``."""
        return f"virtio-serial:{self.path}"
