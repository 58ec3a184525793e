"""Launching, stopping, adopting and watching Cloud Hypervisor, on the contract-validating stand-in
(a TEST DOUBLE: the real binary cannot run here) in front of a kestrel run as a host process.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from chstandin.records import BOOT_REQUESTS, requests_seen, violations
from conftest import SpecFactory
from volant_cloud_hypervisor.channel import HybridVsockChannel, HybridVsockError
from volant_cloud_hypervisor.instance import REBOOT_STATUS, CloudHypervisorInstance
from volant_cloud_hypervisor.launcher import CloudHypervisorLauncher
from volant_cloud_hypervisor.paths import VmPaths

from volant_core.agent.constants import READY_LINE
from volant_core.agent_client import AgentClient
from volant_core.errors import LaunchError
from volant_core.launch import AGENT_LANES, LaunchSpec
from volant_core.testing.contracts import HypervisorContract
from volant_core.testing.processes import processes_mentioning
from volant_core.testing.waiting import eventually

Reap = Callable[[CloudHypervisorInstance], CloudHypervisorInstance]
BOOT_TIMEOUT = 60.0


def _healthy(instance: CloudHypervisorInstance) -> None:
    client = AgentClient(instance.agent_channel)
    try:
        assert client.wait_healthy(BOOT_TIMEOUT, alive=instance.alive)["status"] == "ok"
    finally:
        client.close()


class TestCloudHypervisorOnTheStandIn(HypervisorContract):
    """The core's hypervisor contract, run against this backend and the stand-in."""

    boot_timeout = BOOT_TIMEOUT

    @pytest.fixture
    def launch_spec(self, vm_dir: Path, make_spec: SpecFactory) -> LaunchSpec:
        return make_spec(vm_dir)

    @pytest.fixture
    def broken_spec(self, vm_dir: Path, make_spec: SpecFactory, tmp_path: Path) -> LaunchSpec:
        garbage = tmp_path / "not-a-kernel"
        garbage.write_bytes(b"not a kernel\n" * 64)
        return make_spec(vm_dir, kernel=garbage)


def test_the_agent_answers_over_hybrid_vsock_with_lanes(
    launcher: CloudHypervisorLauncher, vm_dir: Path, make_spec: SpecFactory, volant_reap: Reap
) -> None:
    instance = volant_reap(launcher.launch(make_spec(vm_dir)))
    _healthy(instance)
    channel = instance.agent_channel
    assert isinstance(channel, HybridVsockChannel) and channel.lanes == AGENT_LANES
    held = [channel.connect(5) for _ in range(AGENT_LANES)]  # every lane at once: one stream each
    with pytest.raises(TimeoutError, match="lanes"):
        channel.connect(0.2)
    held.pop().close()
    channel.connect(5).close()  # a closed stream gives its lane back
    for sock in held:
        sock.close()
    with pytest.raises(HybridVsockError, match="CONNECT 9999"):
        HybridVsockChannel(VmPaths(vm_dir).vsock_socket, port=9999).connect(5)
    assert violations(vm_dir) == ""


def test_stop_presses_the_power_button_and_the_guest_powers_off(
    launcher: CloudHypervisorLauncher, vm_dir: Path, make_spec: SpecFactory, volant_reap: Reap
) -> None:
    instance = volant_reap(launcher.launch(make_spec(vm_dir)))
    _healthy(instance)
    assert instance.stop(30) == 0
    assert [line for line in requests_seen(vm_dir) if "ping" not in line] == [
        *BOOT_REQUESTS,
        "PUT vm.power-button 204",
    ]
    assert not VmPaths(vm_dir).pidfile.exists() and not VmPaths(vm_dir).api_socket.exists()


def test_a_guest_ignoring_the_power_button_gets_vmm_shutdown(
    launcher: CloudHypervisorLauncher,
    vm_dir: Path,
    make_spec: SpecFactory,
    volant_reap: Reap,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHSTANDIN_GUEST_IGNORES_POWER_BUTTON", "1")
    instance = volant_reap(launcher.launch(make_spec(vm_dir)))
    assert instance.stop(0.5) == 0
    assert [line for line in requests_seen(vm_dir) if "ping" not in line] == [
        *BOOT_REQUESTS,
        "PUT vm.power-button 204",
        "PUT vmm.shutdown 204",
    ]


def test_a_hung_vmm_is_killed_last(
    launcher: CloudHypervisorLauncher,
    vm_dir: Path,
    make_spec: SpecFactory,
    volant_reap: Reap,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHSTANDIN_GUEST_IGNORES_POWER_BUTTON", "1")
    monkeypatch.setenv("CHSTANDIN_VMM_IGNORES_SHUTDOWN", "1")
    instance = volant_reap(launcher.launch(make_spec(vm_dir)))
    assert instance.stop(0.5) == -signal.SIGKILL
    assert [line for line in requests_seen(vm_dir) if "ping" not in line] == [
        *BOOT_REQUESTS,
        "PUT vm.power-button 204",
        "PUT vmm.shutdown 204",
    ]
    assert instance.stop(0.5) == -signal.SIGKILL, "stop is not idempotent"


def test_a_guest_reboot_is_a_crash(
    launcher: CloudHypervisorLauncher, vm_dir: Path, make_spec: SpecFactory, volant_reap: Reap
) -> None:
    """The guest's PID 1 dies: its kernel panics and, with ``panic=-1``, resets in the same VMM; the
    event monitor says so and the instance ends the VMM, reporting a crash.
    """
    instance = volant_reap(launcher.launch(make_spec(vm_dir)))
    _healthy(instance)
    (kestrel,) = processes_mentioning(str(vm_dir / "chstandin-kestrel.sock"))
    os.kill(kestrel, signal.SIGKILL)
    assert instance.wait(30) == REBOOT_STATUS
    assert instance.reboot is not None and instance.reboot.event in {"rebooting", "rebooted"}


def test_the_console_is_relayed_to_a_log_and_a_socket(
    launcher: CloudHypervisorLauncher, vm_dir: Path, make_spec: SpecFactory, volant_reap: Reap
) -> None:
    instance = volant_reap(launcher.launch(make_spec(vm_dir)))
    _healthy(instance)
    paths = VmPaths(vm_dir)
    eventually(
        lambda: paths.console_log.exists() and READY_LINE in paths.console_log.read_text(errors="replace"),
        "kestrel's output in console.log",
        30,
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as user:
        user.connect(str(paths.console_socket))
        user.sendall(b"uname -a\n")
        input_log = vm_dir / "chstandin-serial-input.log"
        eventually(
            lambda: input_log.exists() and b"uname" in input_log.read_bytes(),
            "typed input reaches the serial port",
            30,
        )


def test_a_new_launcher_adopts_and_a_dead_daemons_launch_is_cleaned_up(
    launcher: CloudHypervisorLauncher, vm_dir: Path, make_spec: SpecFactory, volant_reap: Reap
) -> None:
    spec = make_spec(vm_dir)
    instance = volant_reap(launcher.launch(spec))
    adopted = CloudHypervisorLauncher(launcher._settings).adopt(spec, instance.pid)
    assert adopted is not None and adopted.pid == instance.pid
    # A daemon that died inside launch() never stored the pid: adopt(spec, None) ends that VMM.
    assert CloudHypervisorLauncher(launcher._settings).adopt(spec, None) is None
    assert instance.wait(10) is not None
    assert processes_mentioning(str(vm_dir)) == []
    assert not VmPaths(vm_dir).pidfile.exists()


def test_a_failed_launch_quotes_the_vmm(
    launcher: CloudHypervisorLauncher, vm_dir: Path, make_spec: SpecFactory, tmp_path: Path
) -> None:
    garbage = tmp_path / "bzImage"
    garbage.write_bytes(b"MZ" + b"\0" * 1024)
    with pytest.raises(LaunchError, match="not a PVH vmlinux"):
        launcher.launch(make_spec(vm_dir, kernel=garbage))
    assert not VmPaths(vm_dir).pidfile.exists()
