"""The backend honours volant-core's hypervisor contract (``volant_core.testing.contracts``).

As generated, the backend's "VMM" is kestrel on the host, so the launch spec carries no real
kernel. Once ``vmm_command`` starts your VMM, boot the guest image volant-core builds: take the
``volant_guest`` fixture and pass ``volant_guest.kernel`` and ``initramfs=volant_guest.initramfs``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from volant_core.sdk import LaunchSpec
from volant_core.testing.contracts import HypervisorContract
from volant_core.testing.processes import scratch_dir
from volant_core.testing.specs import host_http_manifest, manifest_argument, small_spec

from {{ cookiecutter.module }}.vmm import VmmLauncher


@pytest.fixture
def vm_dir() -> Iterator[Path]:
    """A short VM directory (socket paths must fit 108 bytes); what runs there is killed after."""
    with scratch_dir("vmm-") as base:
        yield base / "vm"


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    """The kernel file the spec names (the generated backend boots no kernel)."""
    path = tmp_path / "vmlinux"
    path.write_bytes(b"")
    return path


class TestBackend(HypervisorContract):
    """Launch, agent answers, adoption, stop, a killed VMM and a refused launch."""

    @pytest.fixture
    def launcher(self) -> VmmLauncher:
        return VmmLauncher()

    @pytest.fixture
    def launch_spec(self, vm_dir: Path, kernel: Path, tmp_path: Path) -> LaunchSpec:
        arguments = ("console=ttyS0", manifest_argument(host_http_manifest(tmp_path)))
        return small_spec(vm_dir, kernel, kernel_args=arguments)

    @pytest.fixture
    def broken_spec(self, vm_dir: Path, kernel: Path) -> LaunchSpec:
        return small_spec(vm_dir, kernel, kernel_args=("console=ttyS0",))  # no manifest to run
