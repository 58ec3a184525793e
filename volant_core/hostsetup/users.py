"""The system user whose groups VMMs run with (``VOLANT_VMM_USER``, default ``volant-vmm``; each
VMM has ids of its VM's own, :mod:`volant_core.vmm_confinement`): made and removed with
``useradd`` / ``userdel``, under ``--root`` through their ``--prefix``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from volant_core.hostsetup.errors import HostSetupError

#: The user ``volar setup`` creates; the default of ``VOLANT_VMM_USER``.
VMM_USER = "volant-vmm"
#: The group that may open ``/dev/kvm`` on Debian; the VMM user joins it where it exists.
KVM_GROUP = "kvm"


def _names(database: Path) -> set[str]:
    """The names in ``/etc/passwd`` or ``/etc/group`` (under a root): the first field of each line."""
    return {line.split(":", 1)[0] for line in database.read_text().splitlines() if line.strip()}


def user_exists(root: Path, name: str = VMM_USER) -> bool:
    """Whether ``root``'s ``/etc/passwd`` has ``name``."""
    return name in _names(root / "etc/passwd")


def create_user(root: Path, name: str = VMM_USER) -> None:
    """Create the system user ``name`` (own group, no home, no login shell; in ``kvm`` if it exists)."""
    groups = ["--groups", KVM_GROUP] if KVM_GROUP in _names(root / "etc/group") else []
    _run(
        root,
        "useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
        "--shell", "/usr/sbin/nologin", *groups, name,
    )  # fmt: skip


def delete_user(root: Path, name: str = VMM_USER) -> None:
    """Remove the user ``name`` (and its group); gone already is fine."""
    if user_exists(root, name):
        _run(root, "userdel", name)


def _run(root: Path, command: str, *args: str) -> None:
    prefix = [] if root == Path("/") else ["--prefix", str(root)]
    try:
        done = subprocess.run([command, *prefix, *args], capture_output=True, text=True, check=False)
    except OSError as err:
        raise HostSetupError(f"cannot run {command}: {err}; install the passwd package") from err
    if done.returncode != 0:
        raise HostSetupError(f"`{command} {' '.join(args)}` failed: {done.stderr.strip()}")
