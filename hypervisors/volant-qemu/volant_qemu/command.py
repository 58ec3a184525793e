"""Turn a :class:`LaunchSpec` into a QEMU command line (pure: no I/O)."""

from __future__ import annotations

from volant_core.launch import LaunchSpec, agent_serial_port_name
from volant_qemu.paths import VmPaths

#: CPU model to pair with each accelerator.
CPU_MODELS = {"kvm": "host", "tcg": "max"}


def build_command(spec: LaunchSpec, *, accel: str, binary: str) -> list[str]:
    """The full argv that boots ``spec`` with ``accel`` (``kvm`` or ``tcg``) using the QEMU ``binary``.

    Raises :class:`volant_core.errors.LaunchError` when a socket path under
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
        "-smp", str(spec.cpu_cores),
        "-m", str(spec.memory_mb),
        "-kernel", str(spec.kernel),
    ]  # fmt: skip
    if spec.initramfs is not None:
        cmd += ["-initrd", str(spec.initramfs)]
    cmd += ["-append", spec.cmdline]
    cmd += _console_args(paths)
    cmd += _agent_args(paths)
    cmd += ["-device", "virtio-rng-pci"]
    cmd += ["-qmp", qmp_argument(paths)]
    cmd += ["-pidfile", str(paths.pidfile)]
    cmd += _disk_args(spec)
    cmd += _nic_args(spec)
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


def _disk_args(spec: LaunchSpec) -> list[str]:
    args: list[str] = []
    for index, disk in enumerate(spec.disks):
        drive = f"file={_escape(disk.path)},if=none,id=disk{index},format={disk.format}"
        if disk.readonly:
            drive += ",readonly=on"
        device = f"virtio-blk-pci,drive=disk{index}"
        if disk.serial is not None:
            device += f",serial={_escape(disk.serial)}"
        args += ["-drive", drive, "-device", device]
    return args


def _nic_args(spec: LaunchSpec) -> list[str]:
    args: list[str] = []
    for index, nic in enumerate(spec.nics):
        # vhost stays off: without vhost-net on the host QEMU aborts on vhost=on.
        args += [
            "-netdev", f"tap,id=net{index},ifname={nic.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=net{index},mac={nic.mac}" + _mtu(nic.mtu),
        ]  # fmt: skip
    return args


def _mtu(mtu: int | None) -> str:
    """The ``host_mtu`` property of a NIC with an MTU (the guest driver then uses it)."""
    return f",host_mtu={mtu}" if mtu is not None else ""


def _escape(value: object) -> str:
    """Render a value for QEMU's comma-separated option syntax (a literal comma is written twice)."""
    return str(value).replace(",", ",,")
