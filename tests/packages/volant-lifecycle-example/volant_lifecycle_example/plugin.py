"""A test plugin built on the plugin API v2: a network mode, a PCI device driver, a seed builder,
settings, and a reconcile hook. Its "host resources" are files in its own state directory, so a
test sees exactly what it holds:

* ``attached/<vm>``: the network mode ``example-net`` attached the VM;
* ``claims/<vm>``: the device driver claimed the VM's PCI addresses (one a line);
* the seed builder ``example-seed`` writes ``seed.img`` (the user-data) into the directory the core
  gives it;
* ``reconciled.jsonl``: one line per ``volant_daemon_started`` call, naming the VMs it owns (an
  ``attached/<vm>`` file of a VM that no longer exists is removed then), and one per
  ``volant_daemon_stopping`` call.

``VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH=true`` makes the network mode's detach raise (after nothing
was removed), to show that a failing release leaves every VM in a final state.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, Field

from volant_core.sdk import (
    CloudInit,
    DeviceDriverDescriptor,
    Devices,
    DiskSpec,
    NetworkAttachment,
    NetworkModeDescriptor,
    PciDeviceSpec,
    PluginContext,
    SeedBuilderDescriptor,
    ValidationError,
    VMView,
    hookimpl,
)

#: The network mode this plugin registers.
MODE = "example-net"
#: A PCI address (bus/device/function with its domain).
BDF = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


class ExampleSettings(BaseModel):
    """The plugin's settings."""

    fail_detach: bool = Field(default=False, description="make the network mode's detach raise")


def _settings(context: PluginContext) -> ExampleSettings:
    assert isinstance(context.options, ExampleSettings)
    return context.options


class ExampleNetwork:
    """``example-net``: marks each attached VM with a file; no NIC."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.directory = context.state_dir / "attached"

    def attach(self, vm: VMView) -> NetworkAttachment:
        """Mark ``vm`` attached."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / vm.name).write_text(vm.mac_address)
        return NetworkAttachment(kernel_args=("example.net=on",))

    def detach(self, vm: VMView) -> None:
        """Remove the mark (or raise, when told to)."""
        if _settings(self.context).fail_detach:
            raise RuntimeError(f"example-net cannot detach {vm.name} (told to fail)")
        (self.directory / vm.name).unlink(missing_ok=True)


class ExampleDevices:
    """Claims PCI addresses for a VM in a file; refuses malformed ones and addresses claimed by another VM."""

    def __init__(self, context: PluginContext) -> None:
        self.directory = context.state_dir / "claims"

    def validate(self, vm: VMView, devices: Devices) -> None:
        """Every address must be a full BDF not claimed by another VM."""
        for index, address in enumerate(devices.pci_passthrough):
            field = f"devices.pci_passthrough[{index}]"
            if not BDF.fullmatch(address):
                raise ValidationError(
                    f"{field}: {address!r} is not a PCI address like 0000:01:00.0", field=field
                )
            owner = self._owner(address)
            if owner not in (None, vm.name):
                raise ValidationError(f"{field}: {address} is claimed by vm {owner}", field=field)

    def attach(self, vm: VMView, devices: Devices) -> tuple[PciDeviceSpec, ...]:
        """Claim the addresses for ``vm``."""
        self.validate(vm, devices)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / vm.name).write_text("".join(f"{a}\n" for a in devices.pci_passthrough))
        return tuple(
            PciDeviceSpec(a, Path("/sys/bus/pci/devices") / a, iommu_group=None)
            for a in devices.pci_passthrough
        )

    def detach(self, vm: VMView) -> None:
        """Give the claim back."""
        (self.directory / vm.name).unlink(missing_ok=True)

    def _owner(self, address: str) -> str | None:
        if not self.directory.is_dir():
            return None
        return next((f.name for f in self.directory.iterdir() if address in f.read_text().split()), None)


class ExampleSeed:
    """Writes the user-data as ``seed.img``."""

    def build(self, vm: VMView, cloud_init: CloudInit, directory: Path) -> DiskSpec:
        """The seed disk of ``vm``."""
        content = cloud_init.user_data.content if cloud_init.user_data is not None else ""
        seed = directory / "seed.img"
        seed.write_text(content or "")
        return DiskSpec(seed, readonly=True)


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """``VOLANT_LIFECYCLE_EXAMPLE_FAIL_DETACH``."""
    return [ExampleSettings]


@hookimpl
def volant_network_modes() -> list[NetworkModeDescriptor]:
    """``example-net``."""
    return [NetworkModeDescriptor(MODE, factory=ExampleNetwork, description="TEST: marks files only")]


@hookimpl
def volant_device_drivers() -> list[DeviceDriverDescriptor]:
    """A PCI driver claiming addresses in files."""
    return [DeviceDriverDescriptor("example-pci", factory=ExampleDevices, bus="pci")]


@hookimpl
def volant_seed_builders() -> list[SeedBuilderDescriptor]:
    """``example-seed``."""
    return [SeedBuilderDescriptor("example-seed", factory=ExampleSeed)]


@hookimpl
def volant_daemon_started(vms: list[VMView], context: PluginContext) -> None:
    """Note the VMs this plugin's network mode owns; drop marks of VMs that are gone."""
    owned = sorted(vm.name for vm in vms if vm.network_mode == MODE)
    attached = context.state_dir / "attached"
    if attached.is_dir():
        for mark in attached.iterdir():
            if mark.name not in {vm.name for vm in vms}:
                mark.unlink()
    with (context.state_dir / "reconciled.jsonl").open("a") as record:
        record.write(json.dumps({"owned": owned}) + "\n")


@hookimpl
def volant_daemon_stopping(context: PluginContext) -> None:
    """Note that the daemon stops."""
    with (context.state_dir / "reconciled.jsonl").open("a") as record:
        record.write(json.dumps({"stopping": True}) + "\n")
