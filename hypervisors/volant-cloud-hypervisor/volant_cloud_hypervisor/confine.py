"""Handing a VM's files to a Cloud Hypervisor that runs unprivileged, with ids of its VM's own.

Cloud Hypervisor opens every file by path (``VmConfig`` carries no descriptor for a disk or a
kernel), so what a confined VMM opens lies in its VM's directory (ADR 42): the kernel and
initramfs are copied into ``boot/`` and read-only images from elsewhere (the daemon's 0700 cache)
into ``images/`` (:func:`volant_core.vmm_files.copy_in`: a reflink where the filesystem shares
blocks, kept while the source is unchanged), in directories of the daemon's the VMM cannot
change. What cannot be served that way is refused, naming the field and the fix: a writable disk
outside the VM's directory (a copy would lose the guest's writes), an overlay whose backing image
lies outside it (Cloud Hypervisor follows the name in the overlay's header), and a tap (the v54
``NetConfig`` has no descriptor, and an unprivileged VMM cannot bring a named tap up).
"""

from __future__ import annotations

from pathlib import Path

from volant_cloud_hypervisor.paths import VmPaths
from volant_cloud_hypervisor.vmconfig import VmFiles
from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec
from volant_core.vmm_confinement import USER_SETTING, VmmIdentity, hand_over
from volant_core.vmm_files import copy_in

#: Directory under the VM's directory holding its copies of read-only images from elsewhere.
IMAGES_DIR = "images"
#: How a refusal says the VM can run: unconfined, or on the backend that takes descriptors.
FIX = f"set {USER_SETTING}=root to run Cloud Hypervisor unconfined, or use the qemu hypervisor"


def check_confinable(spec: LaunchSpec) -> None:
    """Raise :class:`LaunchError` naming the first field of ``spec`` a confined Cloud Hypervisor
    cannot be given (before anything of the launch is made)."""
    for index, nic in enumerate(spec.nics):
        field = f"nics[{index}]"
        raise LaunchError(
            f"{field}: tap {nic.tap}: a confined Cloud Hypervisor cannot be given a tap (its API "
            f"takes no descriptor for one, and an unprivileged VMM cannot bring a tap up); {FIX}",
            field=field,
        )
    for index, disk in enumerate(spec.disks):
        field = f"disks[{index}]"
        if disk.backing is not None and not disk.backing.path.is_relative_to(spec.vm_dir):
            raise LaunchError(
                f"{field}: the overlay {disk.path.name}'s backing image {disk.backing.path} lies "
                f"outside the VM's directory, and Cloud Hypervisor opens it by the name in the "
                f"overlay's header, which a confined VMM cannot reach; {FIX}",
                field=field,
            )
        if not disk.readonly and not disk.path.is_relative_to(spec.vm_dir):
            raise LaunchError(
                f"{field}: the writable disk {disk.path} lies outside the VM's directory, where a "
                f"confined Cloud Hypervisor cannot open it (a copy would lose the guest's writes); {FIX}",
                field=field,
            )


def prepare_files(spec: LaunchSpec, identity: VmmIdentity, state_dir: Path | None) -> VmFiles:
    """The paths the Cloud Hypervisor of ``spec`` (which :func:`check_confinable` passed), running
    as ``identity``, opens its files by; the VM's directory handed over to ``identity`` (reached
    through ``state_dir``, volantd's).
    """
    kernel = copy_in(spec.vm_dir, spec.kernel)
    initramfs = copy_in(spec.vm_dir, spec.initramfs) if spec.initramfs is not None else None
    disks = tuple(_disk_path(spec, index) for index in range(len(spec.disks)))
    paths = VmPaths(spec.vm_dir)
    readonly = [path for disk, path in zip(spec.disks, disks, strict=True) if disk.readonly]
    writable = [path for disk, path in zip(spec.disks, disks, strict=True) if not disk.readonly]
    read = [kernel, *([initramfs] if initramfs else []), *readonly]
    write = [paths.vmm_log, paths.event_monitor, *writable]
    hand_over(spec.vm_dir, identity, read=read, write=write, state_dir=state_dir)
    return VmFiles(kernel, initramfs, disks)


def _disk_path(spec: LaunchSpec, index: int) -> Path:
    """The path the confined VMM opens disk ``index`` by: its own in the VM's directory, or a copy
    there of a read-only image from elsewhere."""
    disk = spec.disks[index]
    if disk.path.is_relative_to(spec.vm_dir):
        return disk.path
    return copy_in(spec.vm_dir, disk.path, directory=IMAGES_DIR, name=f"{index}-{disk.path.name}")
