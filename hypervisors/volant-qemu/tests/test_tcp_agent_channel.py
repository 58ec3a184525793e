"""The agent proxy does not depend on virtio-serial: the same API over a TCP agent channel.

A TEST hypervisor, ``qemu-user-net``, wraps the QEMU backend: it gives the guest a NIC on
QEMU's user-mode network with a loopback port forwarded to kestrel's TCP port, configures the
guest address through ``volant.ip=``, returns an instance whose agent channel is that TCP port,
and deletes the virtio-serial socket so nothing could reach kestrel that way. The core sends the
VM's agent token over it; a request without it, or with another VM's, is refused.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from volant_qemu.launcher import QemuLauncher

from volant_core import hookimpl
from volant_core.agent.constants import AGENT_TOKEN_HEADER
from volant_core.agent_token import vm_token
from volant_core.channels import TcpChannel
from volant_core.context import PluginContext
from volant_core.guest import GuestArtifacts
from volant_core.launch import HypervisorDescriptor, Instance, LaunchSpec
from volant_core.testing.daemon import RunningDaemon, running_daemon
from volant_core.testing.waiting import free_port
from volant_core.vmm_confinement import VmmConfinement

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
GUEST_ADDRESS = "10.0.2.15"


class TcpAgentInstance:
    """A QEMU instance reached over TCP instead of its virtio-serial port."""

    def __init__(self, inner: Instance, port: int) -> None:
        self._inner = inner
        self.pid = inner.pid
        self.accelerator = inner.accelerator
        self.console_socket = inner.console_socket
        self.console_log = inner.console_log
        self.agent_channel = TcpChannel("127.0.0.1", port)

    def wait(self, timeout: float | None = None) -> int | None:
        """As the QEMU instance."""
        return self._inner.wait(timeout)

    def alive(self) -> bool:
        """As the QEMU instance."""
        return self._inner.alive()

    def stop(self, timeout: float) -> int | None:
        """As the QEMU instance."""
        return self._inner.stop(timeout)

    def kill(self) -> None:
        """As the QEMU instance."""
        self._inner.kill()


class UserNetLauncher:
    """QEMU with a user-mode NIC whose forwarded port is the agent channel (``ports``: VM name -> port)."""

    def __init__(self) -> None:
        self.ports: dict[str, int] = {}
        self.confinement: VmmConfinement | None = None

    def launch(self, spec: LaunchSpec) -> TcpAgentInstance:
        """Launch through the QEMU backend with the extra NIC, then drop the serial channel."""
        port = self.ports[spec.name] = free_port()
        spec = dataclasses.replace(
            spec,
            kernel_args=(*spec.kernel_args, f"volant.ip={GUEST_ADDRESS}/24", "volant.gw=10.0.2.2"),
            extra_args=(
                *spec.extra_args,
                "-netdev",
                f"user,id=usernet,restrict=on,hostfwd=tcp:127.0.0.1:{port}-{GUEST_ADDRESS}:8080",
                "-device",
                "virtio-net-pci,netdev=usernet",
            ),
        )
        inner = QemuLauncher(confinement=self.confinement).launch(spec)
        (spec.vm_dir / "agent.sock").unlink()
        return TcpAgentInstance(inner, port)

    def adopt(self, spec: LaunchSpec, pid: int | None) -> None:
        """Not needed by this test."""
        return None


class UserNetPlugin:
    """Registers the ``qemu-user-net`` test hypervisor."""

    def __init__(self) -> None:
        self.launcher = UserNetLauncher()

    @hookimpl
    def volant_hypervisors(self) -> list[HypervisorDescriptor]:
        """The test backend."""
        return [HypervisorDescriptor("qemu-user-net", self._launcher, "TEST: QEMU, agent over TCP")]

    def _launcher(self, context: PluginContext) -> UserNetLauncher:
        """The launcher, confined as the daemon's settings say (its VMs live under its state dir)."""
        self.launcher.confinement = VmmConfinement.from_settings(context.settings)
        return self.launcher


@pytest.fixture
def plugin() -> UserNetPlugin:
    """The test hypervisor's plugin (its launcher knows each VM's forwarded port)."""
    return UserNetPlugin()


@pytest.fixture
def api(volant_guest: GuestArtifacts, qemu_binary: str, plugin: UserNetPlugin) -> Iterator[RunningDaemon]:
    """A daemon whose VMs run on ``qemu-user-net``, with the example runtime installed."""
    manifest: dict[str, Any] = json.loads((REPO / "examples" / "hello-http" / "manifest.json").read_text())
    with running_daemon(
        volant_guest, plugins=[("qemu-user-net-test", plugin)], hypervisor="qemu-user-net"
    ) as daemon:
        assert daemon.request("POST", "/api/v1/plugins", manifest).status == 201
        yield daemon


def status_of(port: int, method: str, path: str, headers: dict[str, str]) -> int:
    """The status kestrel answers a plain HTTP request on the forwarded port with."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_proxy_actions_and_openapi_over_tcp(api: RunningDaemon, plugin: UserNetPlugin) -> None:
    assert api.request("POST", "/api/v1/vms", {"name": "tcp", "plugin": "hello-http"}).status == 201
    vm = api.wait_for_status("tcp", {"running", "crashed"})
    assert vm["status"] == "running", vm
    assert not (Path(vm["runtime_dir"]) / "agent.sock").exists()

    hello = api.request("GET", "/api/v1/vms/tcp/agent/v1/")
    assert hello.status == 200 and hello.json()["path"] == "/"
    echo = api.request("POST", "/api/v1/vms/tcp/actions/echo", {"over": "tcp"})
    assert echo.json() == {"echo": {"over": "tcp"}, "path": "/echo"}
    assert api.request("GET", "/api/v1/vms/tcp/openapi").json()["info"]["title"] == "hello-http"
    logs = api.request("GET", "/api/v1/vms/tcp/logs?tail=400").body.decode(errors="replace")
    assert f"kestrel: eth0 is {GUEST_ADDRESS}/24" in logs

    port = plugin.launcher.ports["tcp"]
    other_vm = vm_token(api.state_dir, "other")
    assert status_of(port, "POST", "/v1/shutdown", {}) == 401
    assert status_of(port, "POST", "/v1/shutdown", {AGENT_TOKEN_HEADER: other_vm}) == 403
    assert status_of(port, "GET", "/v1/", {AGENT_TOKEN_HEADER: "wrong"}) == 403  # the workload proxy
    assert status_of(port, "GET", "/v1/health", {AGENT_TOKEN_HEADER: vm_token(api.state_dir, "tcp")}) == 200
    assert api.request("GET", "/api/v1/vms/tcp").json()["status"] == "running"
    assert vm_token(api.state_dir, "tcp") not in api.request("GET", "/api/v1/vms/tcp").body.decode()
    assert api.request("DELETE", "/api/v1/vms/tcp").status == 204
