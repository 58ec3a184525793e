"""The plugin as Volant loads it: entry point, hypervisor descriptor, host checks."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy
import pytest
from volant_qemu import plugin
from volant_qemu.launcher import QemuLauncher
from volant_qemu.settings import QemuSettings

from volant_core import hookspecs
from volant_core.context import PluginContext
from volant_core.errors import ValidationError
from volant_core.launch import Capability, HypervisorDescriptor
from volant_core.plugin_settings import resolve_options
from volant_core.settings import load_settings


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
    assert isinstance(
        descriptor.factory(PluginContext("qemu", load_settings({}), QemuSettings())), QemuLauncher
    )
    assert Capability.DISKS in descriptor.capabilities


def _context(**options: str) -> PluginContext:
    """The context the daemon would hand the plugin with ``VOLANT_QEMU_<OPTION>`` set."""
    return PluginContext("qemu", load_settings({}), QemuSettings(**options))


def test_available_reports_a_missing_binary() -> None:
    (descriptor,) = plugin.volant_hypervisors()
    assert descriptor.available is not None
    assert descriptor.available(_context()) is None
    reason = descriptor.available(_context(binary="/nonexistent/qemu-system-x86_64"))
    assert reason is not None and "not found" in reason and "apt-get install" in reason


def test_host_checks(manager: pluggy.PluginManager) -> None:
    checks = {check.name: check for result in manager.hook.volant_host_checks() for check in result}
    assert set(checks) == {"qemu-binary", "qemu-accelerator"}
    assert checks["qemu-binary"].run(_context()).status == "pass"
    assert checks["qemu-binary"].run(_context(binary="/nonexistent/qemu")).status == "fail"
    assert checks["qemu-accelerator"].run(_context(accel="tcg")).status == "warn"


def test_settings_are_validated_and_named() -> None:
    """``VOLANT_QEMU_ACCEL=bogus`` is refused naming the variable; a misspelled variable too."""
    with pytest.raises(ValidationError, match="VOLANT_QEMU_ACCEL"):
        resolve_options("qemu", QemuSettings, {"VOLANT_QEMU_ACCEL": "bogus"})
    with pytest.raises(ValidationError, match="VOLANT_QEMU_ACEL: plugin qemu has no such setting"):
        resolve_options("qemu", QemuSettings, {"VOLANT_QEMU_ACEL": "tcg"})
    assert resolve_options("qemu", QemuSettings, {"VOLANT_QEMU_ACCEL": " TCG"}) == QemuSettings(accel="tcg")
