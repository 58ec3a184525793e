"""Real guests booted through QemuLauncher: agent health, clean poweroff, SIGKILL, adoption."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from volant_qemu.instance import QemuInstance
from volant_qemu.launcher import QemuLauncher
from volant_qemu.paths import VmPaths

from volant_core.agent_client import AgentClient
from volant_core.errors import AgentError, LaunchError
from volant_core.launch import Instance, LaunchSpec
from volant_core.testing.processes import processes_mentioning

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("qemu_binary")]

Reap = Callable[[QemuInstance], QemuInstance]
#: Seconds a guest may take to answer healthy under TCG (GUEST.md: ~6 s alone, ~14 s for two at once).
BOOT_TIMEOUT = 90.0
#: Seconds a guest may take to power off after the ACPI power button.
STOP_TIMEOUT = 60.0


def boot_healthy(spec: LaunchSpec, reap: Reap) -> tuple[QemuInstance, dict[str, object]]:
    """Launch ``spec`` and wait until kestrel answers healthy; return the instance and the health body."""
    instance = reap(QemuLauncher().launch(spec))
    client = AgentClient(instance.agent_channel)
    try:
        health = client.wait_healthy(BOOT_TIMEOUT, alive=instance.alive)
    finally:
        client.close()  # a serial port carries one host connection: free it for the next client
    return instance, health


def test_boot_and_clean_poweroff(guest_spec: LaunchSpec, reap: Reap) -> None:
    instance, health = boot_healthy(guest_spec, reap)
    assert isinstance(instance, Instance)
    assert health["status"] == "ok"
    assert instance.accelerator in ("kvm", "tcg")

    client = AgentClient(instance.agent_channel)
    manifest = client.get("/v1/manifest")
    assert manifest.status == 200
    assert manifest.json()["name"] == "pyhttp"
    client.close()

    assert instance.stop(STOP_TIMEOUT) == 0
    assert not instance.alive()
    assert processes_mentioning(str(guest_spec.vm_dir)) == []
    paths = VmPaths(guest_spec.vm_dir)
    assert [p for p in (*paths.sockets, paths.pidfile) if p.exists()] == []
    assert "kestrel: ready" in paths.console_log.read_text(errors="replace")
    assert instance.stop(STOP_TIMEOUT) == 0  # idempotent


def test_sigkill_is_reported_as_a_signal(guest_spec: LaunchSpec, reap: Reap) -> None:
    instance = reap(QemuLauncher().launch(guest_spec))
    os.kill(instance.pid, signal.SIGKILL)
    with pytest.raises(AgentError, match="exited before its agent became healthy"):
        AgentClient(instance.agent_channel).wait_healthy(BOOT_TIMEOUT, alive=instance.alive)
    assert instance.wait(10) == -signal.SIGKILL
    assert not instance.alive()
    instance.kill()  # idempotent
    assert instance.stop(1) == -signal.SIGKILL


def test_adopt_after_a_daemon_restart(guest_spec: LaunchSpec, reap: Reap, tmp_path: Path) -> None:
    instance, _ = boot_healthy(guest_spec, reap)
    new_launcher = QemuLauncher()

    other_vm = dataclasses.replace(guest_spec, vm_dir=tmp_path / "other")
    assert new_launcher.adopt(other_vm, instance.pid) is None

    adopted = new_launcher.adopt(guest_spec, instance.pid)
    assert adopted is not None
    assert (adopted.pid, adopted.accelerator) == (instance.pid, instance.accelerator)
    assert adopted.alive()
    assert adopted.wait(0) is None

    client = AgentClient(adopted.agent_channel)
    assert client.get("/v1/health").status == 200
    client.close()

    # A second QEMU for the same VM cannot take the pidfile lock: the launch fails, the VM runs on.
    with pytest.raises(LaunchError, match=r"(?i)lock pid file"):
        new_launcher.launch(guest_spec)
    assert adopted.alive()

    assert adopted.stop(STOP_TIMEOUT) == 0
    assert not adopted.alive()
    assert instance.wait(10) == 0  # the real parent sees the clean exit
