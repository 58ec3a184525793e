"""Turn a :class:`LaunchSpec` into the ``VmConfig`` body of ``PUT /api/v1/vm.create`` (Cloud
Hypervisor v54's OpenAPI file; pure: no I/O). This is the one description of the VM the backend
gives Cloud Hypervisor: the VMM is started bare (:mod:`volant_cloud_hypervisor.command`).

What Cloud Hypervisor cannot be told is refused with :class:`LaunchError` naming the field: raw
QEMU escape hatches, and a disk format it would have to guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volant_cloud_hypervisor.paths import VmPaths
from volant_core.errors import LaunchError
from volant_core.launch import DiskSpec, LaunchSpec, NicSpec

#: The spec's image formats → the API's ``ImageType`` (never ``Unknown``: the VMM does not probe).
IMAGE_TYPES = {"raw": "Raw", "qcow2": "Qcow2"}


@dataclass(frozen=True)
class VmFiles:
    """The paths the VMM opens the VM's files by: the spec's own, or the copies a confined VMM is
    given in the VM's directory (:mod:`volant_cloud_hypervisor.confine`). ``disks`` is in the
    order of the spec's disks.
    """

    kernel: Path
    initramfs: Path | None
    disks: tuple[Path, ...]

    @classmethod
    def of(cls, spec: LaunchSpec) -> VmFiles:
        """The files as ``spec`` names them (a VMM that reaches them: root, or the daemon's user)."""
        return cls(spec.kernel, spec.initramfs, tuple(disk.path for disk in spec.disks))


def check_spec(spec: LaunchSpec) -> None:
    """Raise :class:`LaunchError` naming the first field of ``spec`` Cloud Hypervisor cannot be given."""
    if spec.devices or spec.extra_args:
        raise LaunchError(
            "Cloud Hypervisor takes no raw devices or extra arguments (they are another VMM's syntax)",
            field="devices" if spec.devices else "extra_args",
        )
    for index, disk in enumerate(spec.disks):
        if disk.format not in IMAGE_TYPES:
            field = f"disks[{index}]"
            raise LaunchError(
                f"{field}: format {disk.format!r} is not one of {sorted(IMAGE_TYPES)}", field=field
            )


def build_vm_config(spec: LaunchSpec, files: VmFiles) -> dict[str, Any]:
    """The ``VmConfig`` that boots ``spec`` with the VMM opening ``files``.

    The serial port is a socket the console relay reads, the virtio console is off, the hybrid
    vsock socket is always given (the agent channel). A NIC names its existing tap, without
    ``ip``/``mask`` (not applied to a given tap). Raises :class:`LaunchError` as :func:`check_spec`.
    """
    check_spec(spec)
    paths = VmPaths(spec.vm_dir)
    payload: dict[str, Any] = {"kernel": str(files.kernel), "cmdline": spec.cmdline}
    if files.initramfs is not None:
        payload["initramfs"] = str(files.initramfs)
    config: dict[str, Any] = {
        "cpus": {"boot_vcpus": spec.cpu_cores, "max_vcpus": spec.cpu_cores},
        "memory": {"size": spec.memory_mb * 1024 * 1024},
        "payload": payload,
        "vsock": {"cid": spec.vsock_cid, "socket": str(paths.vsock_socket)},
        "serial": {"mode": "Socket", "socket": str(paths.serial_socket)},
        "console": {"mode": "Off"},
    }
    if spec.disks:
        config["disks"] = [_disk(disk, path) for disk, path in zip(spec.disks, files.disks, strict=True)]
    if spec.nics:
        config["net"] = [_net(nic) for nic in spec.nics]
    if spec.pci_devices:
        config["devices"] = [{"path": f"{pci.sysfs_path}/"} for pci in spec.pci_devices]
    return config


def _disk(disk: DiskSpec, path: Path) -> dict[str, Any]:
    value: dict[str, Any] = {
        "path": str(path),
        "readonly": disk.readonly,
        "image_type": IMAGE_TYPES[disk.format],
    }
    if disk.backing is not None:  # a qcow2 overlay: v54 opens its backing file only when told to
        value["backing_files"] = True
    if disk.serial is not None:
        value["serial"] = disk.serial
    return value


def _net(nic: NicSpec) -> dict[str, Any]:
    value: dict[str, Any] = {"tap": nic.tap, "mac": nic.mac}
    if nic.host_mac is not None:
        value["host_mac"] = nic.host_mac
    if nic.mtu is not None:
        value["mtu"] = nic.mtu
    return value
