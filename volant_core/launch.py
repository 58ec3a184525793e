"""What a hypervisor backend receives and what it hands back.

The orchestrator turns a VM record into a :class:`LaunchSpec`, asks the chosen
:class:`Launcher` to start it and keeps the returned :class:`Instance` to watch,
stop and talk to the guest. A third-party hypervisor plugin implements these two
protocols and registers a :class:`HypervisorDescriptor` through the
``volant_hypervisors`` hook; it needs nothing else from the core.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from volant_core.errors import LaunchError

#: Port kestrel serves HTTP on, inside the guest (TCP) and behind every agent channel.
AGENT_PORT = 8080
#: Name of the virtio-serial port that carries the agent channel. A guest may have more such ports
#: ("lanes", each carrying one connection at a time): lane N > 0 is named ``volant.agent.N`` and
#: kestrel serves every port whose name is this one or starts with it and a dot.
AGENT_SERIAL_PORT_NAME = "volant.agent"


#: Agent serial ports ("lanes") a hypervisor gives a new guest: that many connections at once (the
#: core keeps one free for health probes).
AGENT_LANES = 4

#: Longest path ``bind()`` accepts for a UNIX socket on Linux (``sun_path`` is 108 bytes, NUL included).
MAX_SOCKET_PATH = 107
#: Bytes a launcher may use for the name of a socket it creates directly in the VM's directory
#: (QEMU's longest is ``agent.3.sock``): the core checks the directory leaves room for that many
#: before anything is written or downloaded for a VM.
SOCKET_NAME_ROOM = 16


def socket_room_problem(vm_dir: Path) -> str | None:
    """Why ``vm_dir`` is too long for the sockets a launcher keeps in it, or None when they fit."""
    length = len(os.fsencode(vm_dir)) + 1 + SOCKET_NAME_ROOM
    if length <= MAX_SOCKET_PATH:
        return None
    return (
        f"the VM directory {vm_dir} leaves no room for its UNIX sockets ({length} bytes with a "
        f"{SOCKET_NAME_ROOM}-byte socket name; Linux allows {MAX_SOCKET_PATH}): use a shorter VM name "
        "or a shorter VOLANT_RUNTIME_DIR"
    )


def check_socket_paths(sockets: Iterable[Path]) -> None:
    """Raise :class:`~volant_core.errors.LaunchError` naming the first of ``sockets`` whose path does
    not fit in a UNIX socket address (``sun_path``), with what to shorten.
    """
    for sock in sockets:
        length = len(os.fsencode(sock))
        if length > MAX_SOCKET_PATH:
            raise LaunchError(
                f"UNIX socket path {sock} is {length} bytes long; Linux allows at most "
                f"{MAX_SOCKET_PATH}. Use a shorter VM runtime directory (VOLANT state dir or VM name).",
                details={"path": str(sock), "length": length, "max": MAX_SOCKET_PATH},
            )


def agent_serial_port_name(lane: int) -> str:
    """Name of the agent's virtio-serial port number ``lane``: ``volant.agent``, ``volant.agent.1``, ..."""
    if lane < 0:
        raise ValueError(f"lane must be >= 0, not {lane}")
    return AGENT_SERIAL_PORT_NAME if lane == 0 else f"{AGENT_SERIAL_PORT_NAME}.{lane}"


class Capability(StrEnum):
    """What a hypervisor backend can do; the core refuses a VM that needs one its hypervisor lacks."""

    #: Attaches :attr:`LaunchSpec.disks` (a rootfs, manifest disks, a cloud-init seed).
    DISKS = "disks"
    #: Attaches :attr:`LaunchSpec.nics` (tap devices; network modes that need one say so).
    TAP_NICS = "tap-nics"
    #: Passes :attr:`LaunchSpec.pci_devices` through (VFIO).
    PCI_PASSTHROUGH = "pci-passthrough"
    #: Gives the guest a vsock device with :attr:`LaunchSpec.vsock_cid`.
    VSOCK = "vsock"
    #: Understands the backend-specific escape hatches :attr:`LaunchSpec.devices` and ``extra_args``.
    RAW_ARGUMENTS = "raw-arguments"
    #: Offers a serial console socket (``volar vms console``).
    CONSOLE = "console"
    #: Powers the guest off gracefully (ACPI power button or equivalent) before killing it.
    GRACEFUL_STOP = "graceful-stop"
    #: Finds its VMMs again after a daemon restart (:meth:`Launcher.adopt`).
    ADOPT = "adopt"
    #: Runs guests under KVM when the host allows it.
    KVM = "kvm"
    #: Runs guests emulated (no accelerator needed).
    TCG = "tcg"
    #: Gives every instance an agent channel of its own that only the host can use (virtio-serial
    #: ports, a hybrid vsock socket): :attr:`Instance.agent_channel` is never None.
    AGENT_CHANNEL = "agent-channel"


class DiskRole(StrEnum):
    """Why a disk is attached: the runtime's root filesystem, a data disk, or a configuration seed."""

    ROOTFS = "rootfs"
    DATA = "data"
    SEED = "seed"


@dataclass(frozen=True)
class BackingImage:
    """The read-only image a copy-on-write disk reads what the guest has not written yet from.

    ``format`` is ``raw`` or ``qcow2``. The disk's qcow2 header names the same file; a backend that
    can should name it explicitly, so that the VMM never follows a name written in a file it may
    write itself (and a confined VMM can be handed the image as a descriptor).
    """

    path: Path
    format: str


@dataclass(frozen=True)
class DiskSpec:
    """One block device given to the guest, in the order the guest sees them (vda, vdb, ...).

    ``format`` is always explicit (``raw`` or ``qcow2``): backends pass it on and never let the
    VMM probe it. ``serial``, when set, is the disk's serial number as the guest sees it (virtio:
    ``/dev/disk/by-id/virtio-<serial>``); backends that cannot set one refuse it. ``backing``,
    when set, makes the disk a qcow2 overlay of the VM's own over that image (ADR 0037).
    """

    path: Path
    readonly: bool = False
    format: str = "raw"
    role: DiskRole = DiskRole.DATA
    serial: str | None = None
    backing: BackingImage | None = None


@dataclass(frozen=True)
class NicSpec:
    """One network interface backed by a host tap device.

    ``mac`` is the guest's address; ``host_mac`` the tap's own, distinct from it (None: the
    network mode left it to the kernel). ``mtu`` is the link MTU (None: the backend's default).
    """

    tap: str
    mac: str
    host_mac: str | None = None
    mtu: int | None = None


@dataclass(frozen=True)
class PciDeviceSpec:
    """A host PCI device passed through to the guest, as a device driver prepared it.

    ``address`` is the full BDF (``0000:01:00.0``); ``sysfs_path`` the device's directory under
    ``/sys/bus/pci/devices``; ``iommu_group`` its IOMMU group number. Each backend renders it in
    its own syntax (QEMU ``-device vfio-pci,host=``, Cloud Hypervisor ``--device path=``).
    """

    address: str
    sysfs_path: Path
    iommu_group: int | None = None


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a hypervisor needs to boot one VM.

    ``vm_dir`` is the VM's own runtime directory: the launcher keeps its sockets,
    pidfile and logs there and nowhere else, so deleting the directory removes
    every trace of the VM from the host. ``vsock_cid`` is always set (unique per
    VM, >= 3) whether or not the backend gives the guest a vsock device.

    ``devices`` and ``extra_args`` are backend-specific escape hatches (raw VMM
    syntax, e.g. QEMU ``-device`` values and arguments); only a backend with the
    ``raw-arguments`` capability accepts them. Everything else is typed and each
    backend renders it in its own syntax.
    """

    name: str
    vm_dir: Path
    cpu_cores: int
    memory_mb: int
    kernel: Path
    vsock_cid: int
    initramfs: Path | None = None
    kernel_args: tuple[str, ...] = ()
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    pci_devices: tuple[PciDeviceSpec, ...] = ()
    devices: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    @property
    def cmdline(self) -> str:
        """The kernel command line as one string."""
        return " ".join(self.kernel_args)

    def check_boot_files(self) -> None:
        """Raise :class:`~volant_core.errors.LaunchError` naming the kernel or initramfs that is
        missing or not a regular file (before a VMM is started with it).
        """
        for name, path in (("kernel", self.kernel), ("initramfs", self.initramfs)):
            if path is not None and not path.is_file():
                raise LaunchError(f"{name} {path} does not exist or is not a file", field=name)


#: How many bytes of a VMM's log :func:`log_tail` quotes.
LOG_TAIL_BYTES = 2000


def log_tail(path: Path, start: int = 0) -> str:
    """The end (at most :data:`LOG_TAIL_BYTES`) of what was written to the log ``path`` from byte
    ``start`` on, for a launch error: what a VMM said before it failed.
    """
    try:
        with path.open("rb") as log:
            log.seek(max(start, log.seek(0, 2) - LOG_TAIL_BYTES))
            data = log.read()
    except OSError as exc:
        return f"(cannot read: {exc})"
    return data.decode(errors="replace").strip() or "(empty)"


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
    """A running VMM process, as returned by :meth:`Launcher.launch` or :meth:`Launcher.adopt`.

    ``agent_channel`` is how the core reaches kestrel in this guest; None when the backend has
    none, and then the ``volant_agent_channel`` hook is asked for one (a network mode may offer
    the VM's address).
    """

    pid: int
    accelerator: str

    @property
    def agent_channel(self) -> AgentChannel | None:
        """The channel to kestrel, or None when the backend has none (see the class documentation)."""
        ...

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

    def adopt(self, spec: LaunchSpec, pid: int | None) -> Instance | None:
        """Reattach to the VMM ``pid`` started by an earlier volantd, or None if it is gone or not ours.

        ``spec`` names the VM (``name``, ``vm_dir``, ``cpu_cores``, ``memory_mb``, ``vsock_cid``) and
        carries no boot media: volantd resolves no image to adopt (``kernel`` is ``/dev/null``).
        ``pid`` is None when that volantd died before :meth:`launch` returned. Whenever nothing is
        adopted, kill any process the VM's launches left running (a launch cut short must not leave
        a VMM without a row) and remove what they left in ``spec.vm_dir`` (sockets, pidfile).
        """
        ...


@dataclass(frozen=True)
class HypervisorDescriptor:
    """Registration record returned by the ``volant_hypervisors`` hook.

    ``factory`` is called once, lazily, the first time the hypervisor is
    chosen; ``available`` (optional) says why it cannot run on this host, or
    None when it can. Both may take the plugin's
    :class:`~volant_core.context.PluginContext` as their one argument (see
    :func:`volant_core.context.call_with_context`). ``capabilities`` are
    :class:`Capability` values, checked against what each VM needs.
    """

    name: str
    factory: Callable[..., Launcher]
    description: str = ""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    available: Callable[..., str | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Name, description and capabilities, JSON-ready."""
        return {"name": self.name, "description": self.description, "capabilities": sorted(self.capabilities)}
