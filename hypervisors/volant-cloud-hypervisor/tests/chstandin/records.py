"""What the stand-in wrote down for the tests: the requests it answered and the violations it found."""

from __future__ import annotations

from pathlib import Path


def violations(vm_dir: Path) -> str:
    """What the stand-in found against the contract in this VM's requests (empty: nothing)."""
    path = vm_dir / "chstandin-violations.log"
    return path.read_text() if path.exists() else ""


def requests_seen(vm_dir: Path) -> list[str]:
    """The API requests the stand-in answered, ``METHOD endpoint status``, in order."""
    path = vm_dir / "chstandin-requests.log"
    return path.read_text().splitlines() if path.exists() else []
