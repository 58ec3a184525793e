"""The device driver: checks, claims and gives back the PCI devices a VM asks for.

As generated, the driver accepts the addresses its setting ``allowed_devices`` lists and claims
each for one VM at a time in a file of the plugin's state directory; a real driver binds the
device to its passthrough driver in ``attach`` and restores the host driver in ``detach``.
``validate`` runs at every configuration check and must not change the host.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field
from volant_core.sdk import Devices, PciDeviceSpec, PluginContext, ValidationError, VMView

#: A PCI address: domain, bus, device and function.
PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]")
#: Where the kernel shows PCI devices.
PCI_DEVICES = Path("/sys/bus/pci/devices")


class DriverSettings(BaseModel):
    """The plugin's settings: ``VOLANT_{{ cookiecutter.plugin_name|upper|replace('-', '_')|replace('.', '_') }}_<FIELD>``."""

    allowed_devices: str = Field(
        "", description="PCI addresses VMs may be given, comma-separated (default: none)"
    )

    def allowed(self) -> frozenset[str]:
        """The addresses VMs may be given."""
        return frozenset(part.strip() for part in self.allowed_devices.split(",") if part.strip())


class DeviceDriver:
    """Validates, attaches and detaches devices (implements volant-core's ``DeviceDriver`` protocol)."""

    def __init__(self, context: PluginContext) -> None:
        """Claims are kept under the plugin's state directory; the settings list the addresses
        this host may pass through.
        """
        settings = context.options if isinstance(context.options, DriverSettings) else DriverSettings()
        self._claims = context.state_dir / "claims"
        self._allowed = settings.allowed()

    def validate(self, vm: VMView, devices: Devices) -> None:
        """Refuse, naming the field, an address that is malformed, not allowed or claimed by another VM."""
        for index, address in enumerate(devices.pci_passthrough):
            field = f"devices.pci_passthrough[{index}]"
            if not PCI_ADDRESS.fullmatch(address):
                raise ValidationError(
                    f"{field}: {address!r} is not a PCI address like 0000:01:00.0", field=field
                )
            if address not in self._allowed:
                raise ValidationError(
                    f"{field}: {address} is not one of this host's allowed devices", field=field
                )
            owner = self._owner(address)
            if owner not in (None, vm.name):
                raise ValidationError(f"{field}: {address} is attached to the VM {owner}", field=field)

    def attach(self, vm: VMView, devices: Devices) -> list[PciDeviceSpec]:
        """Claim ``devices`` for ``vm``; one PCI spec per device for the hypervisor."""
        self.validate(vm, devices)
        self._claims.mkdir(parents=True, exist_ok=True)
        for address in devices.pci_passthrough:
            (self._claims / address).write_text(vm.name)
        return [PciDeviceSpec(address, PCI_DEVICES / address) for address in devices.pci_passthrough]

    def detach(self, vm: VMView) -> None:
        """Give back every device ``vm`` holds; nothing to do when it holds none."""
        for claim in self._claims.glob("*") if self._claims.is_dir() else []:
            if claim.read_text() == vm.name:
                claim.unlink()

    def _owner(self, address: str) -> str | None:
        claim: Path = self._claims / address
        return claim.read_text() if claim.is_file() else None
