"""Turn a :class:`LaunchSpec` into a QEMU command line (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volant_core.launch import LaunchSpec, agent_serial_port_name
from volant_qemu.paths import VmPaths

#: CPU model to pair with each accelerator.
CPU_MODELS = {"kvm": "host", "tcg": "max"}
#: QEMU's seccomp filter: besides the default deny list, no obsolete system calls, no set*uid/gid,
#: no fork/exec, no changes to scheduling or CPU affinity.
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


@dataclass(frozen=True)
class Handover:
    """How a confined QEMU gets at the files it cannot open itself: the kernel and initramfs it reads
    (copies in its own directory), and descriptors the daemon opened for it (QEMU keeps their numbers).

    ``disk_fds`` holds, per disk of the spec, the descriptor of that disk (opened read-only or
    read-write as the disk is), or None where QEMU opens the path itself; ``backing_fds`` likewise
    the read-only descriptor of each disk's backing image (None: no backing image, or QEMU opens
    it); ``tap_fds`` one descriptor per NIC, attached to its tap.
    """

    kernel: Path
    initramfs: Path | None
    disk_fds: tuple[int | None, ...]
    tap_fds: tuple[int, ...]
    backing_fds: tuple[int | None, ...] = ()

    @property
    def descriptors(self) -> tuple[int, ...]:
        """Every descriptor QEMU inherits."""
        disks = (*self.disk_fds, *self.backing_fds)
        return (*(fd for fd in disks if fd is not None), *self.tap_fds)


def build_command(
    spec: LaunchSpec, *, accel: str, binary: str, handover: Handover | None = None
) -> list[str]:
    """The full argv that boots ``spec`` with ``accel`` (``kvm`` or ``tcg``) using the QEMU ``binary``,
    taking the files and descriptors of ``handover`` (default: QEMU opens every path itself).

    QEMU starts paused (``-S``) inside its seccomp sandbox: the launcher moves it into its cgroup
    before the guest runs. Raises :class:`volant_core.errors.LaunchError` when a socket path under
    ``spec.vm_dir`` is too long for a UNIX socket.
    """
    if accel not in CPU_MODELS:
        raise ValueError(f"unknown accelerator {accel!r}; expected one of {sorted(CPU_MODELS)}")
    paths = VmPaths(spec.vm_dir)
    paths.check_socket_lengths()
    cmd = [
        binary,
        "-M", "q35",
        "-accel", accel,
        "-cpu", CPU_MODELS[accel],
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",
        "-S",
        "-sandbox", SANDBOX,
        "-smp", str(spec.cpu_cores),
        "-m", str(spec.memory_mb),
        "-kernel", str(handover.kernel if handover else spec.kernel),
    ]  # fmt: skip
    initramfs = handover.initramfs if handover else spec.initramfs
    if initramfs is not None:
        cmd += ["-initrd", str(initramfs)]
    cmd += ["-append", spec.cmdline]
    cmd += _console_args(paths)
    cmd += _agent_args(paths)
    cmd += ["-device", "virtio-rng-pci"]
    cmd += ["-qmp", qmp_argument(paths)]
    cmd += ["-pidfile", str(paths.pidfile)]
    cmd += _disk_args(spec, handover.disk_fds if handover else (), handover.backing_fds if handover else ())
    cmd += _nic_args(spec, handover.tap_fds if handover else ())
    for pci in spec.pci_devices:
        cmd += ["-device", f"vfio-pci,host={pci.address}"]
    for device in spec.devices:
        cmd += ["-device", device]
    cmd += list(spec.extra_args)
    return cmd


def qmp_argument(paths: VmPaths) -> str:
    """The value of ``-qmp`` for a VM; :meth:`QemuLauncher.adopt` looks for it in a process's argv."""
    return f"unix:{_escape(paths.qmp_socket)},server=on,wait=off"


def _console_args(paths: VmPaths) -> list[str]:
    chardev = (
        f"socket,id=console,path={_escape(paths.console_socket)},server=on,wait=off,"
        f"logfile={_escape(paths.console_log)},logappend=on"
    )
    return ["-chardev", chardev, "-serial", "chardev:console"]


def _agent_args(paths: VmPaths) -> list[str]:
    """One virtio-serial device with a port per agent lane, each on its own chardev socket."""
    args = ["-device", "virtio-serial-pci"]
    for lane, sock in enumerate(paths.agent_sockets):
        chardev = f"agent{lane}"
        args += [
            "-chardev", f"socket,id={chardev},path={_escape(sock)},server=on,wait=off",
            "-device", f"virtserialport,chardev={chardev},name={agent_serial_port_name(lane)}",
        ]  # fmt: skip
    return args


def _disk_args(
    spec: LaunchSpec, fds: tuple[int | None, ...], backing_fds: tuple[int | None, ...]
) -> list[str]:
    """A drive and a virtio-blk device per disk; a disk passed as a descriptor is an fd set of its
    own (numbered as the descriptor), which QEMU opens as ``/dev/fdset/N``. A disk with a backing
    image names it (read-only, its format given) in place of the name its qcow2 header holds,
    which QEMU then never follows.
    """
    args: list[str] = []
    for index, disk in enumerate(spec.disks):
        args_of_file, source = _file_args(disk.path, fds[index] if index < len(fds) else None)
        args += args_of_file
        drive = f"file={source},if=none,id=disk{index},format={disk.format}"
        if disk.backing is not None:
            backing_fd = backing_fds[index] if index < len(backing_fds) else None
            args_of_file, backing = _file_args(disk.backing.path, backing_fd)
            args += args_of_file
            drive += (
                f",backing.driver={disk.backing.format},backing.file.filename={backing},backing.read-only=on"
            )
        if disk.readonly:
            drive += ",readonly=on"
        device = f"virtio-blk-pci,drive=disk{index}"
        if disk.serial is not None:
            device += f",serial={_escape(disk.serial)}"
        args += ["-drive", drive, "-device", device]
    return args


def _file_args(path: Path, fd: int | None) -> tuple[list[str], str]:
    """``(arguments, file name)`` by which QEMU opens ``path``: itself, or as the fd set of ``fd``."""
    if fd is None:
        return [], _escape(path)
    return ["-add-fd", f"fd={fd},set={fd},opaque={_escape(path)}"], f"/dev/fdset/{fd}"


def _nic_args(spec: LaunchSpec, fds: tuple[int, ...]) -> list[str]:
    """A tap netdev and a virtio-net device per NIC: the tap by name, or by the descriptor passed."""
    args: list[str] = []
    for index, nic in enumerate(spec.nics):
        # vhost stays off: without vhost-net on the host QEMU aborts on vhost=on.
        tap = f"ifname={nic.tap},script=no,downscript=no" if index >= len(fds) else f"fd={fds[index]}"
        args += [
            "-netdev", f"tap,id=net{index},{tap}",
            "-device", f"virtio-net-pci,netdev=net{index},mac={nic.mac}" + _mtu(nic.mtu),
        ]  # fmt: skip
    return args


def _mtu(mtu: int | None) -> str:
    """The ``host_mtu`` property of a NIC with an MTU (the guest driver then uses it)."""
    return f",host_mtu={mtu}" if mtu is not None else ""


def _escape(value: object) -> str:
    """Render a value for QEMU's comma-separated option syntax (a literal comma is written twice)."""
    return str(value).replace(",", ",,")
