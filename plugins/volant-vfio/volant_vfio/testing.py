"""A synthetic sysfs tree for tests of the vfio plugin: the one TEST DOUBLE of this package.

No PCI device can be passed through on a test machine, so the tests build under ``tmp_path`` the
part of ``/sys`` the plugin reads and writes, laid out as the kernel lays it out:

* ``bus/pci/devices/<BDF>/``: ``vendor``, ``device``, ``class``, ``driver_override``, the links
  ``driver -> ../../drivers/<driver>`` and ``iommu_group -> ../../../../kernel/iommu_groups/<n>``;
* ``bus/pci/drivers/<driver>/{bind,unbind}`` and ``bus/pci/drivers_probe``;
* ``kernel/iommu_groups/<n>/devices/<BDF>`` (links to the devices).

Plain files do not act on writes, so :class:`EmulatedKernelSysfs` stands in for the kernel: the
plugin's own :meth:`~volant_vfio.sysfs.Sysfs.write` writes the file (the production path), then the
emulation applies what the kernel does for that file: ``unbind`` removes the device's ``driver``
link, ``bind`` makes it (refused when the device has a driver or its ``driver_override`` names
another one), ``drivers_probe`` binds an unbound device to its ``driver_override``, else to its
native driver (recorded by the tree in a test-only ``.native_driver`` file, as the kernel would
match the device's IDs). ``driver_override`` keeps what was written and shows ``(null)`` once
cleared, as the kernel does.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .sysfs import Sysfs

#: What the kernel shows in ``driver_override`` when none is set.
NO_OVERRIDE = "(null)"
#: Test-only file naming the driver the emulated kernel probes for a device without an override.
NATIVE = ".native_driver"


class EmulatedKernelSysfs(Sysfs):
    """TEST DOUBLE: :class:`Sysfs` whose writes also get the kernel's effects (see the module)."""

    def write(self, path: Path, value: str) -> None:
        """Write as in production, then do what the kernel does for ``path``."""
        super().write(path, value)
        relative = path.relative_to(self.root).parts
        if relative[-1] == "unbind":
            self._unbind(value, relative[-2])
        elif relative[-1] == "bind":
            self._bind(value, relative[-2])
        elif relative[-1] == "drivers_probe":
            self._probe(value)
        elif relative[-1] == "driver_override" and not value:
            path.write_text(NO_OVERRIDE + "\n")

    def _override(self, address: str) -> str:
        value = (self.device_dir(address) / "driver_override").read_text().strip()
        return "" if value == NO_OVERRIDE else value

    def _unbind(self, address: str, driver: str) -> None:
        if self.driver(address) != driver:
            raise OSError(errno.ENODEV, f"{address} is not bound to {driver}")
        (self.device_dir(address) / "driver").unlink()

    def _bind(self, address: str, driver: str) -> None:
        override = self._override(address)
        if self.driver(address) is not None or (override and override != driver):
            raise OSError(errno.ENODEV, f"{driver} may not bind {address}")
        (self.device_dir(address) / "driver").symlink_to(f"../../drivers/{driver}")

    def _probe(self, address: str) -> None:
        if self.driver(address) is not None:
            return
        override = self._override(address)
        native = self.device_dir(address) / NATIVE
        chosen = override or (native.read_text().strip() if native.exists() else "")
        if chosen and self.has_driver(chosen):
            self._bind(address, chosen)


class SysfsTree:
    """Builds the synthetic tree at ``root``."""

    def __init__(self, root: Path) -> None:
        """An empty tree (with ``drivers_probe``) at ``root``."""
        self.root = root
        self.sysfs = EmulatedKernelSysfs(root)
        (root / "bus" / "pci" / "devices").mkdir(parents=True)
        (root / "kernel" / "iommu_groups").mkdir(parents=True)
        (root / "bus" / "pci" / "drivers_probe").touch()

    def add_driver(self, name: str) -> None:
        """Driver ``name`` is loaded."""
        directory = self.sysfs.driver_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("bind", "unbind"):
            (directory / name).touch()

    def add_device(
        self,
        address: str,
        *,
        group: int,
        driver: str | None,
        ids: str = "8086:10fb",
        pci_class: str = "0x020000",
    ) -> None:
        """Device ``address`` of ``ids`` in IOMMU ``group`` (-1: no IOMMU), bound to ``driver``
        (its native one, which ``drivers_probe`` picks) or unbound.
        """
        directory = self.sysfs.device_dir(address)
        directory.mkdir()
        vendor, device = ids.split(":")
        (directory / "vendor").write_text(f"0x{vendor}\n")
        (directory / "device").write_text(f"0x{device}\n")
        (directory / "class").write_text(f"{pci_class}\n")
        (directory / "driver_override").write_text(NO_OVERRIDE + "\n")
        if driver is not None:
            self.add_driver(driver)
            (directory / NATIVE).write_text(driver)
            (directory / "driver").symlink_to(f"../../drivers/{driver}")
        if group >= 0:
            members = self.sysfs.group_dir(group) / "devices"
            members.mkdir(parents=True, exist_ok=True)
            (members / address).symlink_to(os.path.relpath(directory, members))
            (directory / "iommu_group").symlink_to(f"../../../../kernel/iommu_groups/{group}")

    def driver_link(self, address: str) -> str | None:
        """Where the device's ``driver`` link points (None: unbound)."""
        link = self.sysfs.device_dir(address) / "driver"
        return os.readlink(link) if link.is_symlink() else None

    def override(self, address: str) -> str:
        """What ``driver_override`` holds."""
        return (self.sysfs.device_dir(address) / "driver_override").read_text().strip()


#: The devices of :func:`standard_tree`.
NIC = "0000:01:00.0"
NIC_PORT = "0000:01:00.1"
GPU = "0000:02:00.0"
GPU_AUDIO = "0000:02:00.1"
SPARE = "0000:03:00.0"
BRIDGE = "0000:00:01.0"


def standard_tree(root: Path) -> SysfsTree:
    """The tree the package's tests use, at ``root``:

    * IOMMU group 1: ``NIC`` (ixgbe) and ``NIC_PORT`` (unbound);
    * IOMMU group 2: ``GPU`` (nouveau) and ``GPU_AUDIO`` (snd_hda_intel, a host driver);
    * IOMMU group 3: ``SPARE`` (unbound) and ``BRIDGE`` (a PCI bridge on pcieport);
    * vfio-pci loaded.
    """
    tree = SysfsTree(root)
    tree.add_driver("vfio-pci")
    tree.add_device(NIC, group=1, driver="ixgbe")
    tree.add_device(NIC_PORT, group=1, driver=None)
    tree.add_device(GPU, group=2, driver="nouveau", ids="10de:1eb8")
    tree.add_device(GPU_AUDIO, group=2, driver="snd_hda_intel", ids="10de:10f8")
    tree.add_device(SPARE, group=3, driver=None, ids="1af4:1041")
    tree.add_device(BRIDGE, group=3, driver="pcieport", ids="8086:1901", pci_class="0x060400")
    return tree
