"""The workload's root: the runtime's root filesystem, under a RAM overlay or persistent (PID 1 only).

The host attaches a runtime's ``rootfs`` as the first disk and names it on the command line
(``volant.rootfs=/dev/vda``). kestrel keeps running from the base image. By default the disk
is the runtime's image, attached read-only: kestrel mounts it read-only and lays a
tmpfs-backed overlay over it (the workload may write anywhere; its writes live in RAM and
vanish at power-off, and the image stays as it was). With ``volant.rootfs.persistent=1`` the
disk is the VM's own copy-on-write image: kestrel mounts it read-write, with no overlay, and
the workload's writes stay (kestrel syncs before it powers off). Either root gets ``/proc``,
``/sys``, ``/dev`` and a tmpfs ``/tmp``, and the workload is started inside it (see
:func:`enter`).
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from .constants import WORKLOAD_ROOT

_libc = ctypes.CDLL(None, use_errno=True)
_MS_RDONLY, _MS_BIND, _MS_REC = 0x1, 0x1000, 0x4000
_STATE = Path("/run/volant")
#: Longest wait for the disk's node after the virtio_blk driver was loaded.
_DEVICE_WAIT_S = 10.0
_DEVICE_POLL_S = 0.05


def _mount(source: str, target: Path, fstype: str | None, flags: int = 0, options: str = "") -> None:
    target.mkdir(parents=True, exist_ok=True)
    fs = fstype.encode() if fstype else None
    if _libc.mount(source.encode(), str(target).encode(), fs, flags, options.encode() or None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(code)}")


def block_filesystems(table: Path = Path("/proc/filesystems")) -> list[str]:
    """The kernel's file system types that live on a block device (the ones not marked ``nodev``)."""
    return [line.strip() for line in table.read_text().splitlines() if line and not line.startswith("nodev")]


def _mount_device(device: str, target: Path, flags: int) -> str:
    """Mount ``device`` on ``target`` with ``flags`` and the first type that takes it; that type."""
    failures = []
    for fstype in block_filesystems():
        try:
            _mount(device, target, fstype, flags)
            return fstype
        except OSError as exc:
            failures.append(f"{fstype}: {exc.strerror}")
    raise OSError(f"no file system type mounts {device} ({'; '.join(failures) or 'none known'})")


def _wait_for(device: str) -> None:
    deadline = time.monotonic() + _DEVICE_WAIT_S
    while not Path(device).exists():
        if time.monotonic() > deadline:
            raise OSError(f"{device} did not appear within {_DEVICE_WAIT_S:g} s (is the disk attached?)")
        time.sleep(_DEVICE_POLL_S)


def prepare_root(device: str, *, persistent: bool = False) -> tuple[Path, str]:
    """Assemble the workload's root from ``device`` (mounted read-write when ``persistent``, else
    read-only under a RAM overlay); return it and the root file system's type.

    Raises :class:`OSError` naming the step that failed.
    """
    root = Path(WORKLOAD_ROOT)
    _wait_for(device)
    if persistent:
        fstype = _mount_device(device, root, 0)
    else:
        lower, upper, work = _STATE / "lower", _STATE / "upper", _STATE / "work"
        fstype = _mount_device(device, lower, _MS_RDONLY)
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        _mount("overlay", root, "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")
    _mount("proc", root / "proc", "proc")
    _mount("sysfs", root / "sys", "sysfs")
    _mount("/dev", root / "dev", None, _MS_BIND | _MS_REC)
    _mount("tmpfs", root / "tmp", "tmpfs", 0, "mode=1777")
    return root, fstype


def enter(root: str, workdir: str) -> None:
    """Make ``root`` the calling process's root and ``workdir`` (inside it) its directory.

    Runs in the workload's child between fork and exec: system calls only.
    """
    os.chroot(root)
    os.chdir(workdir)
