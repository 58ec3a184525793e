"""The ``vfio-pci`` device driver: checks, claims, binds and gives back a VM's PCI devices.

A device passes the checks when it is on the operator's allowlist (``VOLANT_VFIO_ALLOWED_DEVICES``),
present, of an ID the VM's own ``devices.allowlist`` accepts (when it has one), in an IOMMU group
whose other devices are free for passthrough, and not held by another VM. Attaching claims it
(:mod:`.claims`), binds it to vfio-pci with ``driver_override`` (only this device, never every
device of its ID as ``new_id`` would) and hands the hypervisor a typed ``PciDeviceSpec``; detaching
binds it back to the driver it had and releases the claim.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from volant_core.sdk import (
    Devices,
    PciDeviceSpec,
    PluginContext,
    PluginError,
    ValidationError,
    VMView,
)

from .claims import Claim, ClaimStore, conflict
from .settings import VfioSettings
from .sysfs import BDF, VFIO_PCI, PciDevice, Sysfs

#: An entry of a VM's ``devices.allowlist``: ``vendor:device`` or ``vendor:*``, lower-case hex.
ID_PATTERN = re.compile(r"[0-9a-f]{4}:([0-9a-f]{4}|\*)")
#: Drivers the kernel lets share an IOMMU group with a device in a VFIO container, besides none.
GROUP_SAFE_DRIVERS = frozenset({VFIO_PCI, "pci-stub"})
#: PCI class of bridges (``class`` file ``0x0604xx``): the kernel ignores them in group checks.
BRIDGE_CLASS = "0x0604"
#: Directory of the claims under the plugin's state directory.
CLAIMS_DIR = "claims"


class VfioDriver:
    """Implements :class:`volant_core.sdk.DeviceDriver` with vfio-pci."""

    def __init__(self, context: PluginContext) -> None:
        """Use ``context``'s sysfs root and allowlist; keep claims in its state directory."""
        options = context.options
        assert isinstance(options, VfioSettings)
        self.sysfs = Sysfs(options.sysfs_root)
        self.allowed = options.allowed()
        self.refuse_unbound_siblings = options.unbound_siblings == "refuse"
        self.claims = ClaimStore(context.state_dir / CLAIMS_DIR)
        self._log = context.log

    def validate(self, vm: VMView, devices: Devices) -> None:
        """Refuse devices ``vm`` cannot be given (``ValidationError`` naming the entry; a
        ``ConflictError`` when another VM holds one). Reads sysfs, changes nothing.
        """
        self.check(vm.name, devices)

    def check(self, vm: str, devices: Devices) -> list[PciDevice]:
        """The devices of ``devices`` as sysfs describes them, once every check passed for VM ``vm``."""
        patterns = _patterns(devices.allowlist)
        found: list[PciDevice] = []
        for index, address in enumerate(devices.pci_passthrough):
            field = f"devices.pci_passthrough[{index}]"
            self._check_address(address, field, devices.pci_passthrough[:index])
            device = self.sysfs.describe(address)
            if patterns and not any(_matches(pattern, device) for pattern in patterns):
                raise ValidationError(
                    f"{field}: device {address} is {device.ids}, which devices.allowlist "
                    f"({', '.join(patterns)}) does not accept",
                    field=field,
                )
            if device.iommu_group is None:
                raise ValidationError(
                    f"{field}: device {address} has no IOMMU group: enable the IOMMU "
                    "(intel_iommu=on or amd_iommu=on on the host kernel command line) to pass it through",
                    field=field,
                )
            held = self.claims.holder(address)
            if held is not None and held.vm != vm:
                raise conflict(held, vm)
            found.append(device)
        for index, device in enumerate(found):
            self._check_group(vm, device, devices.pci_passthrough, f"devices.pci_passthrough[{index}]")
        return found

    def attach(self, vm: VMView, devices: Devices) -> tuple[PciDeviceSpec, ...]:
        """Claim the devices for ``vm`` and bind each to vfio-pci; on failure give back all of them."""
        found = self.check(vm.name, devices)
        try:
            for device in found:
                self.claims.take(vm.name, device.address, device.driver)
                self._bind(device.address)
        except BaseException:
            try:
                self.detach(vm)
            except Exception as err:  # the launch's own error is the one to report
                self._log.error("vm %s: giving its devices back failed: %s", vm.name, err)
            raise
        return tuple(PciDeviceSpec(d.address, self.sysfs.device_dir(d.address), d.iommu_group) for d in found)

    def detach(self, vm: VMView) -> None:
        """Bind every device ``vm`` holds back to its original driver and release its claims.
        Idempotent. A device that cannot be given back keeps its claim (its state is unknown);
        the others are still given back, then the first error is raised.
        """
        errors: list[Exception] = []
        for claim in self.claims.of_vm(vm.name):
            try:
                self.release(claim)
            except Exception as err:
                errors.append(err)
        if errors:
            raise errors[0]

    def release(self, claim: Claim) -> None:
        """Bind the device of ``claim`` back to its original driver, then drop the claim."""
        self._restore(claim.address, claim.original_driver)
        self.claims.drop(claim.address)

    # ------------------------------------------------------------------ checks

    def _check_address(self, address: str, field: str, before: Sequence[str]) -> None:
        if not BDF.fullmatch(address):
            raise ValidationError(
                f"{field}: {address!r} is not a PCI address as /sys/bus/pci/devices names it "
                "(domain:bus:device.function in lower-case hex, e.g. 0000:01:00.0)",
                field=field,
            )
        if address in before:
            raise ValidationError(f"{field}: device {address} is listed twice", field=field)
        if address not in self.allowed:
            raise ValidationError(
                f"{field}: device {address} is not in VOLANT_VFIO_ALLOWED_DEVICES; the host's "
                "operator lists there the devices VMs may be given",
                field=field,
            )
        if not self.sysfs.exists(address):
            raise ValidationError(
                f"{field}: this host has no PCI device {address} "
                f"(see {self.sysfs.device_dir(address).parent})",
                field=field,
            )

    def _check_group(self, vm: str, device: PciDevice, requested: Sequence[str], field: str) -> None:
        """Refuse ``device`` when a sibling in its IOMMU group is not free for passthrough."""
        group = device.iommu_group
        assert group is not None
        for sibling in self.sysfs.group_members(group):
            if sibling in requested or self._is_bridge(sibling):
                continue
            driver = self.sysfs.driver(sibling)
            if driver is None and self.refuse_unbound_siblings:
                raise ValidationError(
                    f"{field}: device {device.address} shares IOMMU group {group} with {sibling}, "
                    f"which no driver holds, and VOLANT_VFIO_UNBOUND_SIBLINGS=refuse; add {sibling} "
                    "to devices.pci_passthrough, bind it to vfio-pci, or set that setting to allow",
                    field=field,
                )
            if driver is not None and driver not in GROUP_SAFE_DRIVERS:
                raise ValidationError(
                    f"{field}: device {device.address} shares IOMMU group {group} with {sibling}, "
                    f"which is bound to host driver {driver!r}; a group passes through whole: add "
                    f"{sibling} to devices.pci_passthrough (and VOLANT_VFIO_ALLOWED_DEVICES), or "
                    f"unbind it from {driver}",
                    field=field,
                )
            held = self.claims.holder(sibling)
            if held is not None and held.vm != vm:
                raise ValidationError(
                    f"{field}: device {device.address} shares IOMMU group {group} with {sibling}, "
                    f"which vm {held.vm!r} holds; one group goes to one VM",
                    field=field,
                )

    def _is_bridge(self, address: str) -> bool:
        try:
            return (self.sysfs.device_dir(address) / "class").read_text().startswith(BRIDGE_CLASS)
        except OSError:
            return False

    # ------------------------------------------------------------------ binding

    def _bind(self, address: str) -> None:
        """Bind ``address`` to vfio-pci through ``driver_override`` (nothing when it is already)."""
        current = self.sysfs.driver(address)
        if current == VFIO_PCI:
            return
        if not self.sysfs.has_driver(VFIO_PCI):
            raise PluginError(
                f"device {address}: the vfio-pci driver is not loaded; run modprobe vfio-pci "
                "(volar doctor checks it)"
            )
        self.sysfs.set_override(address, VFIO_PCI)
        if current is not None:
            self.sysfs.unbind(address, current)
        self.sysfs.probe(address)
        bound = self.sysfs.driver(address)
        if bound != VFIO_PCI:
            raise PluginError(
                f"device {address}: bound to {bound or 'no driver'} after drivers_probe, not vfio-pci"
            )
        self._log.info("device %s: %s -> vfio-pci", address, current or "no driver")

    def _restore(self, address: str, original: str | None) -> None:
        """Give ``address`` back to ``original`` (None: leave it unbound)."""
        if not self.sysfs.exists(address) or original == VFIO_PCI:
            return
        current = self.sysfs.driver(address)
        self.sysfs.set_override(address, None)
        if current == VFIO_PCI:
            self.sysfs.unbind(address, VFIO_PCI)
        if original is not None and self.sysfs.driver(address) is None:
            self.sysfs.bind(address, original)
        self._log.info("device %s: %s -> %s", address, current or "no driver", original or "no driver")


def _patterns(allowlist: Sequence[str]) -> list[str]:
    """The entries of a VM's ``devices.allowlist``, each checked."""
    for index, pattern in enumerate(allowlist):
        if not ID_PATTERN.fullmatch(pattern):
            raise ValidationError(
                f"devices.allowlist[{index}]: {pattern!r} is not vendor:device or vendor:* in "
                "lower-case hex (e.g. 8086:10fb)",
                field=f"devices.allowlist[{index}]",
            )
    return list(allowlist)


def _matches(pattern: str, device: PciDevice) -> bool:
    vendor, product = pattern.split(":")
    return vendor == device.vendor and product in ("*", device.device)
