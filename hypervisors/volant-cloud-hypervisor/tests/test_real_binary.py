"""With a real Cloud Hypervisor on PATH (not the stand-in) and a usable ``/dev/kvm``, the same
contract and lifecycle run on real guests; elsewhere (the project's hosts) these tests are skipped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from volant_cloud_hypervisor.binary import find_binary
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher
from volant_cloud_hypervisor.plugin import check_kvm
from volant_cloud_hypervisor.settings import CloudHypervisorSettings

from volant_core.context import PluginContext
from volant_core.guest import BASE_KERNEL_ARGS, GuestArtifacts
from volant_core.launch import LaunchSpec
from volant_core.settings import load_settings
from volant_core.testing.contracts import HypervisorContract
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.specs import guest_http_manifest, manifest_argument, small_spec

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def real_binary() -> str:
    """The real ``cloud-hypervisor``; the module is skipped without one, or without KVM."""
    binary = find_binary("cloud-hypervisor")
    if binary is None:
        pytest.skip(
            "no cloud-hypervisor on PATH (Debian 12 has no package: the static binary of its GitHub releases)"
        )
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    if "stand-in" in version:
        pytest.skip("cloud-hypervisor on PATH is the test stand-in")
    context = PluginContext("cloud-hypervisor", load_settings({}), CloudHypervisorSettings())
    if check_kvm(context).status != "pass":
        pytest.skip("/dev/kvm cannot be opened")
    return binary


@pytest.fixture
def volant_hypervisor(real_binary: str) -> str:
    """``volantd_with_guest`` boots its guests with this backend."""
    return "cloud-hypervisor"


class TestRealCloudHypervisor(HypervisorContract):
    """The core's hypervisor contract, booting the session's guest under the real binary."""

    @pytest.fixture
    def launcher(self, real_binary: str) -> CloudHypervisorLauncher:
        return CloudHypervisorLauncher(CloudHypervisorSettings(binary=real_binary))

    @pytest.fixture
    def launch_spec(self, volant_guest: GuestArtifacts, vm_dir: Path) -> LaunchSpec:
        arguments = (*BASE_KERNEL_ARGS, manifest_argument(guest_http_manifest()))
        return small_spec(
            vm_dir, volant_guest.kernel, name="real", initramfs=volant_guest.initramfs, kernel_args=arguments
        )

    @pytest.fixture
    def broken_spec(self, launch_spec: LaunchSpec, tmp_path: Path) -> LaunchSpec:
        garbage = tmp_path / "not-a-kernel"
        garbage.write_bytes(b"not a kernel\n" * 1024)
        return LaunchSpec(**{**launch_spec.__dict__, "kernel": garbage})


def test_a_vm_runs_and_stops_through_volantd(real_binary: str, volantd_with_guest: RunningDaemon) -> None:
    daemon = volantd_with_guest
    manifest: dict[str, Any] = {**guest_http_manifest(), "runtime": "pyhttp"}
    assert daemon.request("POST", "/api/v1/plugins", manifest).status == 201
    assert daemon.request("POST", "/api/v1/vms", {"name": "real", "plugin": "pyhttp"}).status == 201
    assert daemon.wait_for_status("real", {"running", "crashed"}, 180)["status"] == "running"
    assert daemon.request("GET", "/api/v1/vms/real/agent/v1/").status == 200
    assert daemon.request("POST", "/api/v1/vms/real/stop").status == 200
    assert daemon.wait_for_status("real", {"stopped", "crashed"}, 120)["status"] == "stopped"
