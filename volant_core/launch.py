"""What a hypervisor backend receives and what it hands back.

The orchestrator turns a VM record into a :class:`LaunchSpec`, asks the chosen
:class:`Launcher` to start it and keeps the returned :class:`Instance` to watch,
stop and talk to the guest. A third-party hypervisor plugin implements these two
protocols and registers a :class:`HypervisorDescriptor` through the
``volant_hypervisors`` hook; it needs nothing else from the core.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

#: Port kestrel serves HTTP on, inside the guest (TCP) and behind every agent channel.
AGENT_PORT = 8080
#: Name of the virtio-serial port that carries the agent channel. A guest may have more such ports
#: ("lanes", each carrying one connection at a time): lane N > 0 is named ``volant.agent.N`` and
#: kestrel serves every port whose name is this one or starts with it and a dot.
AGENT_SERIAL_PORT_NAME = "volant.agent"


def agent_serial_port_name(lane: int) -> str:
    """Name of the agent's virtio-serial port number ``lane``: ``volant.agent``, ``volant.agent.1``, ..."""
    if lane < 0:
        raise ValueError(f"lane must be >= 0, not {lane}")
    return AGENT_SERIAL_PORT_NAME if lane == 0 else f"{AGENT_SERIAL_PORT_NAME}.{lane}"


@dataclass(frozen=True)
class DiskSpec:
    """One block device given to the guest, in the order the guest sees them (vda, vdb, ...)."""

    path: Path
    readonly: bool = False
    format: str = "raw"


@dataclass(frozen=True)
class NicSpec:
    """One network interface backed by a host tap device."""

    tap: str
    mac: str


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a hypervisor needs to boot one VM.

    ``vm_dir`` is the VM's own runtime directory: the launcher keeps its sockets,
    pidfile and logs there and nowhere else, so deleting the directory removes
    every trace of the VM from the host.
    """

    name: str
    vm_dir: Path
    cpu_cores: int
    memory_mb: int
    kernel: Path
    initramfs: Path | None = None
    kernel_args: tuple[str, ...] = ()
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    vsock_cid: int | None = None
    devices: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    @property
    def cmdline(self) -> str:
        """The kernel command line as one string."""
        return " ".join(self.kernel_args)


class AgentChannel(Protocol):
    """A way to open a byte stream to kestrel's HTTP server inside one guest.

    Virtio-serial ports, a Cloud Hypervisor hybrid vsock socket and a TCP
    connection to the guest's address all look the same to the core: a
    connected stream socket on which it speaks HTTP/1.1. The core keeps a
    connection open while an answer streams (the agent proxy relays bodies as
    they come), so a channel should carry several connections at once: a
    channel over serial ports gives each connection a port of its own ("lane")
    and waits in :meth:`connect` for a free one. Such a channel should also
    have an int attribute ``lanes`` (optional, read with ``getattr``): the
    agent client then lets ordinary requests use all lanes but one, which
    stays free for health probes.
    """

    #: True when the channel carries only one connection at a time (a single serial port):
    #: callers then take turns, each holding the channel until its answer has been read.
    exclusive: bool

    def connect(self, timeout: float) -> socket.socket:
        """Return a connected socket to kestrel within ``timeout`` seconds, or raise ``OSError``
        (``TimeoutError`` when it could not in time).

        A channel with a limited number of connections (lanes) may wait for one to
        be free; closing the returned socket frees it again.
        """
        ...

    def describe(self) -> str:
        """A short human-readable description, e.g. ``virtio-serial:/run/.../agent.sock (4 lanes)``."""
        ...


@runtime_checkable
class Instance(Protocol):
    """A running VMM process, as returned by :meth:`Launcher.launch` or :meth:`Launcher.adopt`."""

    pid: int
    accelerator: str
    agent_channel: AgentChannel
    console_socket: Path | None
    console_log: Path | None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the VMM to exit; return its exit status, or None if still running after ``timeout``.

        A negative status means the process was killed by that signal. An
        adopted process (not our child) reports 0 when it is gone.
        """
        ...

    def alive(self) -> bool:
        """Whether the VMM process is still running."""
        ...

    def stop(self, timeout: float) -> int | None:
        """Ask the guest to power off (ACPI or equivalent), kill the VMM after ``timeout`` seconds.

        Returns the exit status. Idempotent.
        """
        ...

    def kill(self) -> None:
        """Kill the VMM at once. Idempotent."""
        ...


class Launcher(Protocol):
    """A hypervisor backend: starts VMMs from launch specs."""

    def launch(self, spec: LaunchSpec) -> Instance:
        """Start the VMM for ``spec`` and return at once (do not wait for the guest).

        On failure raise :class:`volant_core.errors.LaunchError` and leave no
        process behind.
        """
        ...

    def adopt(self, spec: LaunchSpec, pid: int) -> Instance | None:
        """Reattach to a VMM started by an earlier volantd, or None if it is gone or not ours.

        When the VMM is gone, remove what it left in ``spec.vm_dir`` (sockets, pidfile).
        """
        ...


@dataclass(frozen=True)
class HypervisorDescriptor:
    """Registration record returned by the ``volant_hypervisors`` hook.

    ``factory`` is called once, lazily, the first time the hypervisor is
    chosen; ``available`` (optional) says why it cannot run on this host, or
    None when it can.
    """

    name: str
    factory: Callable[[], Launcher]
    description: str = ""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    available: Callable[[], str | None] | None = None
