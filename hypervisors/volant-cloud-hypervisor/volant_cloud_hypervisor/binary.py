"""Finding the ``cloud-hypervisor`` binary on this host."""

from __future__ import annotations

import shutil

from volant_core.errors import LaunchError

#: The variable naming another binary.
BINARY_VARIABLE = "VOLANT_CLOUD_HYPERVISOR_BINARY"
#: Where the binary comes from (it is in no package registry these hosts reach).
RELEASES = "https://github.com/cloud-hypervisor/cloud-hypervisor/releases"


def find_binary(wanted: str) -> str | None:
    """Absolute path of the binary ``wanted`` (a path or a name looked up in ``PATH``), or None."""
    return shutil.which(wanted)


def missing_binary_reason(wanted: str) -> str | None:
    """Why Cloud Hypervisor (``wanted``) cannot run here, or None when its binary is found."""
    if find_binary(wanted) is not None:
        return None
    return (
        f"{wanted} not found: install the static cloud-hypervisor binary from {RELEASES} "
        f"(v54) on PATH, or point {BINARY_VARIABLE} at it"
    )


def require_binary(wanted: str) -> str:
    """The binary ``wanted``, or raise :class:`LaunchError` saying how to install it."""
    binary = find_binary(wanted)
    if binary is None:
        raise LaunchError(missing_binary_reason(wanted) or f"{wanted} not found")
    return binary
