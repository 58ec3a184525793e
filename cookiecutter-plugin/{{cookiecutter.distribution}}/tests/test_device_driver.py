"""The device driver honours volant-core's device-driver contract (``volant_core.testing.contracts``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from volant_core.sdk import Devices, PluginContext, ValidationError, VMView
from volant_core.testing.contracts import DeviceDriverContract, make_vm_view
from volant_core.testing.plugins import plugin_context

from {{ cookiecutter.module }}.devices import DeviceDriver, DriverSettings

ALLOWED = "0000:01:00.0"


class TestDeviceDriver(DeviceDriverContract):
    """Validation naming the field, attach and detach, detach twice."""

    @pytest.fixture
    def context(self, tmp_path: Path) -> PluginContext:
        settings = DriverSettings(allowed_devices=ALLOWED)
        return plugin_context("{{ cookiecutter.plugin_name }}", tmp_path / "state", options=settings)

    @pytest.fixture
    def device_driver(self, context: PluginContext) -> DeviceDriver:
        return DeviceDriver(context)

    @pytest.fixture
    def vm(self, tmp_path: Path) -> VMView:
        return make_vm_view("web", tmp_path / "vm")

    @pytest.fixture
    def devices(self) -> Devices:
        return Devices(pci_passthrough=[ALLOWED])

    @pytest.fixture
    def bad_devices(self) -> Devices:
        return Devices(pci_passthrough=["0000:02:00.0"])  # not allowed on this host

    def test_a_claimed_device_is_refused_to_another_vm(
        self, device_driver: DeviceDriver, vm: VMView, devices: Devices, tmp_path: Path
    ) -> None:
        device_driver.attach(vm, devices)
        with pytest.raises(ValidationError, match="attached to the VM web"):
            device_driver.validate(make_vm_view("db", tmp_path / "db"), devices)
        device_driver.detach(vm)
        device_driver.validate(make_vm_view("db", tmp_path / "db"), devices)
