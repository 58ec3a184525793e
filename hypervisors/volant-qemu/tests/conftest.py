"""Shared fixtures for the QEMU backend tests: short runtime directories, reaping, launch specs.

The guest artifacts come from the core's ``volant_guest`` fixture (volant_core.testing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from volant_qemu.binary import find_binary

from volant_core.guest import BASE_KERNEL_ARGS, GuestArtifacts
from volant_core.launch import LaunchSpec
from volant_core.testing.processes import scratch_dir
from volant_core.testing.specs import guest_http_manifest, manifest_argument, small_spec


@pytest.fixture(scope="session")
def qemu_binary() -> str:
    """The QEMU binary; the test is skipped without one."""
    binary = find_binary()
    if binary is None:
        pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    return binary


@pytest.fixture
def vm_dir() -> Iterator[Path]:
    """A short runtime directory (UNIX socket paths must stay under 108 bytes); every QEMU whose
    argv names it is killed afterwards, whatever the test did.
    """
    with scratch_dir("vq-") as base:
        base.chmod(0o711)  # QEMU runs as the VMM user: it must reach vm_dir (as below volantd's state dir)
        yield base / "vm"


@pytest.fixture
def tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force TCG so that no KVM probe boot runs."""
    monkeypatch.setenv("VOLANT_QEMU_ACCEL", "tcg")


@pytest.fixture
def garbage_kernel(tmp_path: Path) -> Path:
    """A file QEMU refuses to boot as a kernel."""
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"not a kernel\n" * 1024)
    return kernel


SpecFactory = Callable[..., LaunchSpec]


@pytest.fixture
def make_spec() -> SpecFactory:
    """Build a small launch spec (1 vCPU, 256 MiB): ``make_spec(vm_dir, kernel, **overrides)``."""
    return small_spec


@pytest.fixture
def guest_spec(volant_guest: GuestArtifacts, vm_dir: Path, make_spec: SpecFactory) -> LaunchSpec:
    """A launch spec booting the guest with a Python HTTP workload (1 vCPU, 256 MiB)."""
    kernel_args = (*BASE_KERNEL_ARGS, manifest_argument(guest_http_manifest()))
    return make_spec(vm_dir, volant_guest.kernel, initramfs=volant_guest.initramfs, kernel_args=kernel_args)
