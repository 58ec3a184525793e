"""Booting the guest with QEMU directly (q35, TCG): command line, QMP, the booted VM's sockets.

A stand-in until the QEMU hypervisor plugin boots guests in these tests.
"""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volant_core.agent.constants import SERIAL_PORT_NAME
from volant_core.guest import BASE_KERNEL_ARGS, GuestArtifacts

QEMU = "qemu-system-x86_64"


class Qmp:
    """A QMP connection: :meth:`command` skips asynchronous events."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(str(path))
        self._file = self._sock.makefile("rwb")
        json.loads(self._file.readline())
        self.command("qmp_capabilities")

    def command(self, name: str) -> Any:
        """Run ``name`` and return its ``return`` value."""
        self._file.write(json.dumps({"execute": name}).encode() + b"\n")
        self._file.flush()
        while True:
            reply = json.loads(self._file.readline())
            if "error" in reply:
                raise RuntimeError(f"QMP {name}: {reply['error']}")
            if "return" in reply:
                return reply["return"]

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()


@dataclass
class BootedGuest:
    """A QEMU process and the host ends of its sockets."""

    process: subprocess.Popen[bytes]
    agent_socket: Path
    qmp_socket: Path
    console_log: Path

    def qmp(self, timeout: float = 10.0) -> Qmp:
        """A new QMP connection."""
        return Qmp(self.qmp_socket, timeout)

    def wait_exit(self, timeout: float) -> int | None:
        """QEMU's exit status, or None if it still runs after ``timeout`` seconds."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def console(self) -> str:
        """Everything the guest printed on its serial console so far."""
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""


def qemu_argv(
    artifacts: GuestArtifacts, initrd: Path, runtime: Path, kernel_args: tuple[str, ...]
) -> list[str]:
    """The direct q35/TCG command line: PVH kernel, console and agent on sockets, entropy, QMP."""
    return [
        QEMU, "-accel", "tcg", "-M", "q35", "-m", "384", "-smp", "1",
        "-nodefaults", "-display", "none", "-no-reboot",
        "-kernel", str(artifacts.kernel), "-initrd", str(initrd),
        "-append", " ".join((*BASE_KERNEL_ARGS, *kernel_args)),
        "-chardev", f"socket,id=con,path={runtime / 'console.sock'},server=on,wait=off,"
                    f"logfile={runtime / 'console.log'}",
        "-serial", "chardev:con",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=agent,path={runtime / 'agent.sock'},server=on,wait=off",
        "-device", f"virtserialport,chardev=agent,name={SERIAL_PORT_NAME}",
        "-device", "virtio-rng-pci",
        "-qmp", f"unix:{runtime / 'qmp.sock'},server=on,wait=off",
    ]  # fmt: skip
