"""Guest artifacts: the kernel and initramfs every Volant guest boots, and initramfs layers.

:func:`ensure_guest` builds (once, cached) an uncompressed PVH kernel and a base initramfs holding
busybox, the virtio modules, a trimmed Python and kestrel as ``/init``. :func:`file_layer` makes
the small per-VM archive the orchestrator appends to it (for example the manifest file).
"""

from .cpio import CpioEntry, file_layer, newc_archive
from .image import BASE_KERNEL_ARGS, GuestArtifacts, Progress, ensure_guest, newest_build

__all__ = [
    "BASE_KERNEL_ARGS",
    "CpioEntry",
    "GuestArtifacts",
    "Progress",
    "ensure_guest",
    "file_layer",
    "newc_archive",
    "newest_build",
]
