"""The PCI part of sysfs, read and written through one small accessor.

Paths are relative to a root (``/sys`` on a host, the plugin's ``sysfs_root`` setting):

* ``bus/pci/devices/<BDF>/``: ``vendor``, ``device``, ``driver`` (a link to the bound driver),
  ``driver_override``, ``iommu_group`` (a link to ``kernel/iommu_groups/<n>``);
* ``bus/pci/drivers/<driver>/bind`` and ``unbind``: writing a BDF binds or unbinds it;
* ``bus/pci/drivers_probe``: writing a BDF has the kernel pick its driver (``driver_override``
  first);
* ``kernel/iommu_groups/<n>/devices/``: one entry per device of the group.

Every write goes through :meth:`Sysfs.write`, so the kernel's effects are the only thing a test
double has to add.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

#: A PCI address as sysfs names it: domain, bus, device and function, lower-case hex.
BDF = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
#: The driver devices are bound to for passthrough.
VFIO_PCI = "vfio-pci"


@dataclass(frozen=True)
class PciDevice:
    """What sysfs says about one PCI device."""

    address: str
    vendor: str
    device: str
    driver: str | None
    iommu_group: int | None

    @property
    def ids(self) -> str:
        """``vendor:device`` as allowlists write it (``8086:10fb``)."""
        return f"{self.vendor}:{self.device}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "address": self.address,
            "vendor": self.vendor,
            "device": self.device,
            "driver": self.driver,
            "iommu_group": self.iommu_group,
        }


class Sysfs:
    """Reads and writes the PCI files of the sysfs tree at ``root``."""

    def __init__(self, root: Path) -> None:
        """Use the tree at ``root`` (``/sys`` on a host)."""
        self.root = root

    def device_dir(self, address: str) -> Path:
        """The directory of device ``address`` (``<root>/bus/pci/devices/<BDF>``)."""
        return self.root / "bus" / "pci" / "devices" / address

    def driver_dir(self, driver: str) -> Path:
        """The directory of driver ``driver``."""
        return self.root / "bus" / "pci" / "drivers" / driver

    def group_dir(self, group: int) -> Path:
        """The directory of IOMMU group ``group``."""
        return self.root / "kernel" / "iommu_groups" / str(group)

    def exists(self, address: str) -> bool:
        """Whether the host has device ``address``."""
        return self.device_dir(address).is_dir()

    def describe(self, address: str) -> PciDevice:
        """Vendor, device, driver and IOMMU group of ``address`` (which must exist)."""
        directory = self.device_dir(address)
        return PciDevice(
            address=address,
            vendor=_hex_id(directory / "vendor"),
            device=_hex_id(directory / "device"),
            driver=self.driver(address),
            iommu_group=self.iommu_group(address),
        )

    def driver(self, address: str) -> str | None:
        """The driver ``address`` is bound to, or None when it is unbound."""
        link = self.device_dir(address) / "driver"
        return os.path.basename(os.readlink(link)) if link.is_symlink() else None

    def iommu_group(self, address: str) -> int | None:
        """The IOMMU group of ``address``, or None when the host has no IOMMU enabled."""
        link = self.device_dir(address) / "iommu_group"
        return int(os.path.basename(os.readlink(link))) if link.is_symlink() else None

    def group_members(self, group: int) -> list[str]:
        """The addresses of every device of IOMMU group ``group``."""
        return sorted(entry.name for entry in (self.group_dir(group) / "devices").iterdir())

    def has_driver(self, driver: str) -> bool:
        """Whether the kernel has driver ``driver`` loaded."""
        return self.driver_dir(driver).is_dir()

    def iommu_enabled(self) -> bool:
        """Whether the host has IOMMU groups (an IOMMU is enabled)."""
        groups = self.root / "kernel" / "iommu_groups"
        return groups.is_dir() and any(groups.iterdir())

    # ------------------------------------------------------------------ the kernel's interface

    def set_override(self, address: str, driver: str | None) -> None:
        """Have only ``driver`` bind ``address`` from now on (None: clear the override)."""
        self.write(self.device_dir(address) / "driver_override", driver or "")

    def unbind(self, address: str, driver: str) -> None:
        """Unbind ``address`` from ``driver``."""
        self.write(self.driver_dir(driver) / "unbind", address)

    def bind(self, address: str, driver: str) -> None:
        """Bind ``address`` to ``driver``."""
        self.write(self.driver_dir(driver) / "bind", address)

    def probe(self, address: str) -> None:
        """Have the kernel bind ``address`` to its driver (the override, when one is set)."""
        self.write(self.root / "bus" / "pci" / "drivers_probe", address)

    def write(self, path: Path, value: str) -> None:
        """Write ``value`` and a newline to the sysfs file ``path`` in one ``write()``, as
        ``echo value > path`` does, but never creating it (a missing file is an ``OSError``).
        """
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, value.encode() + b"\n")
        finally:
            os.close(fd)


def _hex_id(path: Path) -> str:
    """A ``vendor`` or ``device`` file's ID without ``0x`` (``8086``)."""
    return path.read_text().strip().lower().removeprefix("0x")
