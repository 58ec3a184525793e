"""Kernel parameters under ``/proc/sys``; those under ``net`` belong to the caller's network namespace."""

from __future__ import annotations

from pathlib import Path

from volant_core.hostsetup.errors import HostSetupError

#: The sysctl that lets the host route the VMs' traffic.
IP_FORWARD = "net.ipv4.ip_forward"

PROC_SYS = Path("/proc/sys")


def _path(key: str) -> Path:
    return PROC_SYS / key.replace(".", "/")


def read(key: str) -> str:
    """The current value of sysctl ``key`` (e.g. ``net.ipv4.ip_forward``), stripped."""
    try:
        return _path(key).read_text().strip()
    except OSError as err:
        raise HostSetupError(f"cannot read {key}: {err}") from err


def write(key: str, value: str) -> None:
    """Set sysctl ``key`` to ``value``."""
    try:
        _path(key).write_text(f"{value}\n")
    except OSError as err:
        raise HostSetupError(f"cannot set {key}={value}: {err} (run as root)") from err
