"""Turn a :class:`LaunchSpec` into a Cloud Hypervisor v54 command line (pure: no I/O).

Every device option is one argument of comma-separated ``key=value`` pairs, and Cloud Hypervisor
has no escape for a comma inside a value: a path or name holding one is refused, naming the field.
"""

from __future__ import annotations

from volant_cloud_hypervisor.paths import VmPaths
from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec

#: ``--seccomp`` value: Cloud Hypervisor's own system-call filter, on.
SECCOMP = "true"
#: Image formats the backend passes on as ``image_type=`` (never probed by the VMM).
IMAGE_TYPES = frozenset({"raw", "qcow2"})


def build_command(spec: LaunchSpec, *, binary: str) -> list[str]:
    """The argv that boots ``spec`` with the Cloud Hypervisor ``binary``.

    Raises :class:`LaunchError` (naming the field) for what Cloud Hypervisor cannot be told: a value
    holding a comma, a disk format it should not guess, raw QEMU escape hatches, a socket path too
    long for a UNIX socket.
    """
    if spec.devices or spec.extra_args:
        raise LaunchError(
            "Cloud Hypervisor takes no raw devices or extra arguments (they are another VMM's syntax)",
            field="devices" if spec.devices else "extra_args",
        )
    paths = VmPaths(spec.vm_dir)
    paths.check_socket_lengths()
    cmd = [
        binary,
        "--api-socket", api_socket_argument(paths),
        "--cpus", f"boot={spec.cpu_cores}",
        "--memory", f"size={spec.memory_mb}M",
        "--kernel", str(spec.kernel),
    ]  # fmt: skip
    if spec.initramfs is not None:
        cmd += ["--initramfs", str(spec.initramfs)]
    cmd += ["--cmdline", spec.cmdline]
    cmd += _disk_args(spec)
    cmd += _net_args(spec)
    cmd += ["--vsock", f"cid={spec.vsock_cid},socket={_value(paths.vsock_socket, 'vm_dir')}"]
    for index, pci in enumerate(spec.pci_devices):
        cmd += ["--device", f"path={_value(pci.sysfs_path, f'pci_devices[{index}]')}/"]
    cmd += [
        "--serial", f"socket={_value(paths.serial_socket, 'vm_dir')}",
        "--console", "off",
        "--event-monitor", f"path={_value(paths.event_monitor, 'vm_dir')}",
        "--log-file", str(paths.vmm_log),
        "--seccomp", SECCOMP,
    ]  # fmt: skip
    return cmd


def api_socket_argument(paths: VmPaths) -> str:
    """The value of ``--api-socket`` for a VM; :meth:`CloudHypervisorLauncher.adopt` looks for it."""
    return f"path={_value(paths.api_socket, 'vm_dir')}"


def _disk_args(spec: LaunchSpec) -> list[str]:
    args: list[str] = []
    for index, disk in enumerate(spec.disks):
        field = f"disks[{index}]"
        if disk.format not in IMAGE_TYPES:
            raise LaunchError(
                f"{field}: format {disk.format!r} is not one of {sorted(IMAGE_TYPES)}", field=field
            )
        value = f"path={_value(disk.path, field)},readonly={'on' if disk.readonly else 'off'}"
        value += f",image_type={disk.format}"
        if disk.backing is not None:  # a qcow2 overlay: v54 opens its backing file only when told to
            value += ",backing_files=on"
        if disk.serial is not None:
            value += f",serial={_value(disk.serial, field + '.serial')}"
        args += ["--disk", value]
    return args


def _net_args(spec: LaunchSpec) -> list[str]:
    """One ``--net`` per NIC on its existing tap: no ``ip=``/``mask=`` (not applied to a given tap)."""
    args: list[str] = []
    for index, nic in enumerate(spec.nics):
        field = f"nics[{index}]"
        value = f"tap={_value(nic.tap, field + '.tap')},mac={nic.mac}"
        if nic.host_mac is not None:
            value += f",host_mac={nic.host_mac}"
        if nic.mtu is not None:
            value += f",mtu={nic.mtu}"
        args += ["--net", value]
    return args


def _value(value: object, field: str) -> str:
    """``value`` as text for a ``key=value`` list; refused when it holds a comma (no escape exists)."""
    text = str(value)
    if "," in text:
        raise LaunchError(
            f"{field}: {text!r} contains a comma, which Cloud Hypervisor's option syntax cannot carry; "
            "rename it",
            field=field,
        )
    return text
