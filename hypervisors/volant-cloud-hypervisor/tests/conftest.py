"""Shared fixtures for the Cloud Hypervisor backend tests.

The ``cloud-hypervisor`` binary cannot run on these hosts (no registry ships it, and their KVM does
not run stock guests), so the tests use ``chstandin``, a contract-validating TEST DOUBLE of it (see
``chstandin/__init__.py``), and the contract files copied into ``contracts/``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher
from volant_cloud_hypervisor.settings import CloudHypervisorSettings

from volant_core.launch import LaunchSpec
from volant_core.testing.processes import scratch_dir
from volant_core.testing.specs import host_http_manifest, manifest_argument, small_spec

# The stand-in is a package of these tests (not of the distribution): make it importable.
sys.path.insert(0, str(Path(__file__).parent))


#: What the stand-in takes for a PVH vmlinux: an ELF file (it boots nothing).
FAKE_VMLINUX = b"\x7fELF\x02\x01\x01" + b"\0" * 1024


def write_standin(directory: Path) -> Path:
    """Install the stand-in as ``directory/cloud-hypervisor`` (an executable script); its path."""
    script = directory / "cloud-hypervisor"
    script.write_text(
        f"#!{sys.executable}\n"
        '"""Cloud Hypervisor v54 stand-in: a TEST DOUBLE (see chstandin/__init__.py)."""\n'
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from chstandin.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    script.chmod(0o755)
    return script


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in executable, in a directory of its own (put it on PATH to have it found)."""
    return write_standin(tmp_path_factory.mktemp("standin-bin"))


@pytest.fixture
def launcher(standin: Path) -> CloudHypervisorLauncher:
    """A launcher running the stand-in."""
    return CloudHypervisorLauncher(CloudHypervisorSettings(binary=str(standin), console_log_max_bytes=4096))


@pytest.fixture
def vm_dir() -> Iterator[Path]:
    """A short runtime directory (UNIX socket paths must stay under 108 bytes); every process whose
    argv names it is killed afterwards, whatever the test did.
    """
    with scratch_dir("vch-") as base:
        yield base / "vm"


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    """A file the stand-in takes for a vmlinux."""
    path = tmp_path / "vmlinux"
    path.write_bytes(FAKE_VMLINUX)
    return path


SpecFactory = Callable[..., LaunchSpec]


@pytest.fixture
def make_spec(kernel: Path, tmp_path: Path) -> SpecFactory:
    """A launch spec whose guest (kestrel on the host, behind the stand-in) serves an HTTP workload:
    ``make_spec(vm_dir, **overrides)``.
    """

    def build(vm_dir: Path, **overrides: Any) -> LaunchSpec:
        arguments = ("console=ttyS0", "panic=-1", manifest_argument(host_http_manifest(tmp_path)))
        fields = {"kernel": kernel, "kernel_args": arguments, **overrides}
        return small_spec(vm_dir, **fields)

    return build
