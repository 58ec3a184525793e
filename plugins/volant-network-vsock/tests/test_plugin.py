"""The ``vsock`` mode on real daemons with the TEST host-process backend (kestrel and the workload
as host processes, reached over a UNIX socket): refused where the hypervisor has no agent channel of
its own, working without any address where it has one. Booted guests: tests/e2e/test_network_vsock.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from volant_network_vsock import plugin

from volant_core.sdk import Capability, HypervisorDescriptor, VMView, hookimpl
from volant_core.testing import hostvm
from volant_core.testing.contracts import NetworkModeContract, make_vm_view
from volant_core.testing.daemon import RunningDaemon
from volant_core.testing.kestrel import http_server_workload

#: The TEST backend, declaring the agent channel it has (kestrel's UNIX socket).
WITH_CHANNEL = "test-host-channel"


class WithChannel:
    """Registers the host-process backend again, this time with ``agent-channel``."""

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """The test backend."""
        capabilities = frozenset({Capability.ADOPT, Capability.AGENT_CHANNEL})
        return [
            HypervisorDescriptor(WITH_CHANNEL, hostvm.HostProcessLauncher, "TEST", capabilities=capabilities)
        ]


def runtime(workdir: Path) -> dict[str, Any]:
    """A runtime whose workload is ``python -m http.server`` on the host."""
    return {
        "name": "files",
        "version": "1.0.0",
        "workload": http_server_workload(workdir),
        "health_check": {"endpoint": "/", "timeout_ms": 20000},  # running once it serves
    }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    """A daemon with both TEST backends (host-process the default) and the ``files`` runtime."""
    (tmp_path / "hello.txt").write_text("over the agent channel\n")
    with hostvm.host_process_daemon(plugins=[("with-channel", WithChannel())]) as running:
        assert running.request("POST", "/api/v1/plugins", runtime(tmp_path)).status == 201
        yield running


def test_the_mode_is_registered_with_what_it_requires(daemon: RunningDaemon) -> None:
    modes = {
        mode["name"]: mode
        for mode in daemon.request("GET", "/api/v1/system/info").json()["extensions"]["network_modes"]
    }
    assert modes["vsock"]["requires"] == ["agent-channel"]


def test_a_hypervisor_without_its_own_agent_channel_is_refused_at_create(daemon: RunningDaemon) -> None:
    config = {"network": {"mode": "vsock"}}
    answer = daemon.request("POST", "/api/v1/vms", {"name": "v", "plugin": "files", "config": config})
    assert answer.status == 422, answer.json()
    error = answer.json()["error"]
    assert error["details"][0]["field"] == "network.mode"
    assert "'agent-channel'" in error["message"] and hostvm.NAME in error["message"]
    assert daemon.request("GET", "/api/v1/vms").json() == []  # nothing half-made stays


def test_with_an_agent_channel_the_vm_runs_without_any_address(daemon: RunningDaemon) -> None:
    config = {"network": {"mode": "vsock"}, "hypervisor": WITH_CHANNEL}
    assert (
        daemon.request("POST", "/api/v1/vms", {"name": "v", "plugin": "files", "config": config}).status
        == 201
    )
    vm = daemon.wait_for_status("v", {"running", "crashed"})
    assert vm["status"] == "running", vm
    assert vm["network_mode"] == "vsock" and vm["ip_address"] is None
    answer = daemon.request("GET", "/api/v1/vms/v/agent/v1/hello.txt")
    assert answer.status == 200 and answer.body == b"over the agent channel\n"


class TestVsockContract(NetworkModeContract):
    """The core's network-mode contract: attach and detach, twice, and of a VM never attached."""

    @pytest.fixture
    def network_mode(self) -> Any:
        (descriptor,) = plugin.volant_network_modes()
        return descriptor.factory()

    @pytest.fixture
    def vm(self, tmp_path: Path) -> VMView:
        return make_vm_view("v", tmp_path, network_mode="vsock")

    def test_attach_holds_nothing(self, network_mode: Any, vm: VMView) -> None:
        """No NIC, no kernel argument: the guest is reached over the hypervisor's agent channel only."""
        attachment = network_mode.attach(vm)
        assert attachment.nics == () and attachment.kernel_args == ()
