"""The plugin's settings (``VOLANT_VFIO_<FIELD>``, ``volantd --vfio-<field>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from .sysfs import BDF


class VfioSettings(BaseModel):
    """Where sysfs is and which host devices VMs may be given."""

    allowed_devices: str = Field(
        "",
        description=(
            "PCI addresses (0000:01:00.0, comma-separated) that VMs may be given; a device not "
            "listed is refused, whatever a manifest asks. Empty (the default): none"
        ),
    )
    sysfs_root: Path = Field(Path("/sys"), description="the sysfs mount the PCI devices are read from")
    unbound_siblings: Literal["allow", "refuse"] = Field(
        "allow",
        description=(
            "a requested device's IOMMU-group siblings that no driver holds: allow (the kernel finds "
            "such a group viable and keeps host drivers off it while a VM uses it) or refuse (every "
            "sibling must be requested too, or bound to vfio-pci or pci-stub)"
        ),
    )

    @field_validator("allowed_devices")
    @classmethod
    def _addresses(cls, value: str) -> str:
        addresses = [part.strip() for part in value.split(",") if part.strip()]
        for address in addresses:
            if not BDF.fullmatch(address):
                raise ValueError(
                    f"{address!r} is not a PCI address as /sys/bus/pci/devices names it "
                    "(domain:bus:device.function in lower-case hex, e.g. 0000:01:00.0)"
                )
        return ",".join(addresses)

    @field_validator("sysfs_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"{value} is not an absolute path")
        return value

    def allowed(self) -> frozenset[str]:
        """The addresses VMs may be given."""
        return frozenset(filter(None, self.allowed_devices.split(",")))
