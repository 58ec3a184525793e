"""What the stand-in wrote down for the tests: the requests it answered and the violations it found."""

from __future__ import annotations

from pathlib import Path

#: The requests that created and booted the VM, first of what a launch sends after ``vmm.ping``.
BOOT_REQUESTS = ["PUT vm.create 204", "PUT vm.boot 204"]


def violations(vm_dir: Path) -> str:
    """What the stand-in found against the contract in this VM's requests (empty: nothing)."""
    path = vm_dir / "chstandin-violations.log"
    return path.read_text() if path.exists() else ""


def requests_seen(vm_dir: Path) -> list[str]:
    """The API requests the stand-in answered, ``METHOD endpoint status``, in order."""
    path = vm_dir / "chstandin-requests.log"
    return path.read_text().splitlines() if path.exists() else []
