"""Finding the QEMU system emulator on this host."""

from __future__ import annotations

import os
import shutil

from volant_core.errors import LaunchError

#: Environment variable naming the QEMU binary (a path or a name looked up in ``PATH``).
BINARY_ENV = "VOLANT_QEMU_BINARY"
#: The emulator looked up when ``VOLANT_QEMU_BINARY`` is not set.
DEFAULT_BINARY = "qemu-system-x86_64"


def find_binary(wanted: str | None = None) -> str | None:
    """Absolute path of the QEMU binary ``wanted`` (default: ``VOLANT_QEMU_BINARY`` or the usual
    name), or None when it is not installed.
    """
    return shutil.which(wanted or os.environ.get(BINARY_ENV) or DEFAULT_BINARY)


def missing_binary_reason(wanted: str | None = None) -> str | None:
    """Why QEMU (``wanted``, as for :func:`find_binary`) cannot run here, or None when it can."""
    if find_binary(wanted) is not None:
        return None
    wanted = wanted or os.environ.get(BINARY_ENV) or DEFAULT_BINARY
    return (
        f"{wanted} not found: install QEMU (Debian/Ubuntu: apt-get install --no-install-recommends "
        f"qemu-system-x86) or point {BINARY_ENV} at the binary"
    )


def require_binary(wanted: str | None = None) -> str:
    """The QEMU binary (``wanted``, as for :func:`find_binary`), or raise :class:`LaunchError` saying
    how to install it.
    """
    binary = find_binary(wanted)
    if binary is None:
        raise LaunchError(missing_binary_reason(wanted) or "QEMU not found")
    return binary
