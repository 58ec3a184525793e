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
from volant_core.manifest import encode_for_guest, parse_manifest
from volant_core.settings import load_settings
from volant_core.testing.contracts import HypervisorContract
from volant_core.testing.daemon import RunningDaemon

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
        manifest = parse_manifest(
            {
                "name": "pyhttp",
                "version": "1.0.0",
                "workload": {
                    "type": "http",
                    "base_url": "http://127.0.0.1:8000",
                    "entrypoint": ["/usr/bin/python3.11", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
                },
                "health_check": {"endpoint": "/", "timeout_ms": 5000},
            }
        )
        return LaunchSpec(
            name="real",
            vm_dir=vm_dir,
            cpu_cores=1,
            memory_mb=256,
            kernel=volant_guest.kernel,
            initramfs=volant_guest.initramfs,
            vsock_cid=3,
            kernel_args=(*BASE_KERNEL_ARGS, f"volant.manifest={encode_for_guest(manifest)}"),
        )

    @pytest.fixture
    def broken_spec(self, launch_spec: LaunchSpec, tmp_path: Path) -> LaunchSpec:
        garbage = tmp_path / "not-a-kernel"
        garbage.write_bytes(b"not a kernel\n" * 1024)
        return LaunchSpec(**{**launch_spec.__dict__, "kernel": garbage})


def test_a_vm_runs_and_stops_through_volantd(real_binary: str, volantd_with_guest: RunningDaemon) -> None:
    daemon = volantd_with_guest
    manifest: dict[str, Any] = {
        "name": "pyhttp",
        "version": "1.0.0",
        "runtime": "pyhttp",
        "workload": {
            "type": "http",
            "base_url": "http://127.0.0.1:8000",
            "entrypoint": ["/usr/bin/python3.11", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
        },
        "health_check": {"endpoint": "/", "timeout_ms": 5000},
    }
    assert daemon.request("POST", "/api/v1/plugins", manifest).status == 201
    assert daemon.request("POST", "/api/v1/vms", {"name": "real", "plugin": "pyhttp"}).status == 201
    assert daemon.wait_for_status("real", {"running", "crashed"}, 180)["status"] == "running"
    assert daemon.request("GET", "/api/v1/vms/real/agent/v1/").status == 200
    assert daemon.request("POST", "/api/v1/vms/real/stop").status == 200
    assert daemon.wait_for_status("real", {"stopped", "crashed"}, 120)["status"] == "stopped"
