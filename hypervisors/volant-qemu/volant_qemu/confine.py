"""Handing a VM's files to a QEMU that runs unprivileged, with ids of its VM's own.

QEMU may create its sockets and pidfile in the VM's directory and open the files of its VM there
(:func:`volant_core.vmm_confinement.hand_over`); the kernel and initramfs, when they live elsewhere
(the daemon's cache, 0700), are copied into ``boot/`` there (:func:`volant_core.vmm_files.copy_in`);
disks elsewhere, and the backing images of the VM's overlays (in the daemon's cache), are opened
by the daemon and passed as descriptors, and so is every tap (only root opens ``/dev/net/tun``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from volant_core import hostnet
from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec
from volant_core.vmm_confinement import VmmIdentity, hand_over
from volant_core.vmm_files import copy_in
from volant_qemu.command import Handover
from volant_qemu.paths import VmPaths


def prepare_handover(spec: LaunchSpec, identity: VmmIdentity, state_dir: Path | None) -> Handover:
    """Everything the QEMU of ``spec``, running as ``identity``, needs and cannot open itself; the
    VM's directory handed over to ``identity`` (reached through ``state_dir``, volantd's). The caller
    closes :attr:`Handover.descriptors`.
    """
    opened: list[int] = []
    try:
        kernel = copy_in(spec.vm_dir, spec.kernel)
        initramfs = copy_in(spec.vm_dir, spec.initramfs) if spec.initramfs is not None else None
        disk_fds: list[int | None] = []
        backing_fds: list[int | None] = []
        for disk in spec.disks:
            disk_fds.append(_outside(spec.vm_dir, disk.path, disk.readonly, opened))
            backing = disk.backing.path if disk.backing is not None else None
            backing_fds.append(None if backing is None else _outside(spec.vm_dir, backing, True, opened))
        tap_fds: list[int] = []
        for nic in spec.nics:
            tap_fds.append(hostnet.open_tap(nic.tap))
            opened.append(tap_fds[-1])
        paths = VmPaths(spec.vm_dir)
        inside = [disk for disk, fd in zip(spec.disks, disk_fds, strict=True) if fd is None]
        read = [kernel, *([initramfs] if initramfs else []), *(d.path for d in inside if d.readonly)]
        write = [paths.console_log, paths.pidfile, *(d.path for d in inside if not d.readonly)]
        hand_over(spec.vm_dir, identity, read=read, write=write, state_dir=state_dir)
        return Handover(kernel, initramfs, tuple(disk_fds), tuple(tap_fds), tuple(backing_fds))
    except BaseException:
        close_all(opened)
        raise


def _outside(vm_dir: Path, image: Path, readonly: bool, opened: list[int]) -> int | None:
    """None for an ``image`` in ``vm_dir`` (QEMU opens it there), else a descriptor of it the
    daemon opened (read-only or read-write), added to ``opened``."""
    if image.is_relative_to(vm_dir):
        return None
    try:
        opened.append(os.open(image, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC))
    except OSError as err:
        raise LaunchError(f"cannot open disk {image}: {err}") from err
    return opened[-1]


def close_all(descriptors: tuple[int, ...] | list[int]) -> None:
    """Close the daemon's copies of descriptors passed to QEMU."""
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            os.close(descriptor)
