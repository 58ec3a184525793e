"""The plugin as Volant loads it: entry point, hypervisor descriptor, host checks."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy
import pytest
from volant_qemu import plugin
from volant_qemu.binary import BINARY_ENV
from volant_qemu.launcher import QemuLauncher

from volant_core import hookspecs
from volant_core.descriptors import HostCheckResult
from volant_core.launch import HypervisorDescriptor


@pytest.fixture
def manager() -> pluggy.PluginManager:
    """A plugin manager with the Volant hook specifications and this plugin registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    pm.check_pending()
    return pm


def test_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="volant.plugins") if ep.name == "qemu"]
    assert ep.load() is plugin


def test_hypervisor_descriptor(manager: pluggy.PluginManager) -> None:
    descriptors = [d for result in manager.hook.volant_hypervisors() for d in result]
    assert [d.name for d in descriptors] == ["qemu"]
    (descriptor,) = descriptors
    assert isinstance(descriptor, HypervisorDescriptor)
    assert isinstance(descriptor.factory(), QemuLauncher)
    assert "virtio-serial-agent" in descriptor.capabilities


def test_available_reports_a_missing_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    (descriptor,) = plugin.volant_hypervisors()
    assert descriptor.available is not None
    monkeypatch.setenv(BINARY_ENV, "/nonexistent/qemu-system-x86_64")
    reason = descriptor.available()
    assert reason is not None and "not found" in reason and "apt-get install" in reason


def test_host_checks(manager: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    checks = {check.name: check for result in manager.hook.volant_host_checks() for check in result}
    assert set(checks) == {"qemu-binary", "qemu-accelerator"}
    for check in checks.values():
        assert isinstance(check.run(), HostCheckResult)
    monkeypatch.setenv(BINARY_ENV, "/nonexistent/qemu")
    assert checks["qemu-binary"].run().status == "fail"
    monkeypatch.setenv("VOLANT_QEMU_ACCEL", "tcg")
    assert checks["qemu-accelerator"].run().status == "warn"
    monkeypatch.setenv("VOLANT_QEMU_ACCEL", "bogus")
    assert checks["qemu-accelerator"].run().status == "fail"
