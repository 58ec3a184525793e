"""Real guests booted through QemuLauncher: the core's hypervisor contract, and what is QEMU's own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from volant_qemu.instance import QemuInstance
from volant_qemu.launcher import QemuLauncher
from volant_qemu.paths import VmPaths
from volant_qemu.settings import QemuSettings

from volant_core.agent_client import AgentClient
from volant_core.errors import LaunchError
from volant_core.launch import LaunchSpec
from volant_core.testing.contracts import HypervisorContract
from volant_core.testing.processes import processes_mentioning

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("qemu_binary")]

Reap = Callable[[QemuInstance], QemuInstance]
SpecFactory = Callable[..., LaunchSpec]
#: Seconds a guest may take to answer healthy under TCG (GUEST.md: ~6 s alone, ~14 s for two at once).
BOOT_TIMEOUT = 90.0
#: Seconds a guest may take to power off after the ACPI power button.
STOP_TIMEOUT = 60.0


def boot_healthy(spec: LaunchSpec, volant_reap: Reap) -> tuple[QemuInstance, dict[str, object]]:
    """Launch ``spec`` and wait until kestrel answers healthy; return the instance and the health body."""
    instance = volant_reap(QemuLauncher().launch(spec))
    client = AgentClient(instance.agent_channel)
    try:
        health = client.wait_healthy(BOOT_TIMEOUT, alive=instance.alive)
    finally:
        client.close()  # a serial port carries one host connection: free it for the next client
    return instance, health


class TestQemuHonoursTheHypervisorContract(HypervisorContract):
    """The core's hypervisor contract (volant_core.testing.contracts), on real TCG guests."""

    boot_timeout = BOOT_TIMEOUT
    stop_timeout = STOP_TIMEOUT

    @pytest.fixture
    def launcher(self) -> QemuLauncher:
        """A launcher as the daemon builds it, forced to TCG (no KVM probe boot)."""
        return QemuLauncher(QemuSettings(accel="tcg"))

    @pytest.fixture
    def launch_spec(self, guest_spec: LaunchSpec) -> LaunchSpec:
        """The guest with a Python HTTP workload."""
        return guest_spec

    @pytest.fixture
    def broken_spec(self, vm_dir: Path, make_spec: SpecFactory, garbage_kernel: Path) -> LaunchSpec:
        """A kernel QEMU refuses."""
        return make_spec(vm_dir, garbage_kernel)


def test_qemu_specifics_of_a_boot_and_poweroff(guest_spec: LaunchSpec, volant_reap: Reap) -> None:
    """What the contract does not cover: the manifest reached kestrel, QEMU's files are removed after a
    clean poweroff (logs kept), and a second QEMU for the same VM cannot take its pidfile lock.
    """
    instance, health = boot_healthy(guest_spec, volant_reap)
    assert health["status"] == "ok"
    assert instance.accelerator in ("kvm", "tcg")

    client = AgentClient(instance.agent_channel)
    manifest = client.get("/v1/manifest")
    assert manifest.status == 200
    assert manifest.json()["name"] == "pyhttp"
    client.close()

    with pytest.raises(LaunchError, match=r"(?i)lock pid file"):
        QemuLauncher().launch(guest_spec)
    assert instance.alive()

    assert instance.stop(STOP_TIMEOUT) == 0
    assert processes_mentioning(str(guest_spec.vm_dir)) == []
    paths = VmPaths(guest_spec.vm_dir)
    assert [p for p in (*paths.sockets, paths.pidfile) if p.exists()] == []
    assert "kestrel: ready" in paths.console_log.read_text(errors="replace")
