"""The ``vfio`` plugin: the PCI device driver ``vfio-pci``, its host checks, its settings and its
``/api/v1/vfio/devices`` routes.
"""

from __future__ import annotations

import threading

import falcon
from pydantic import BaseModel

from volant_core.sdk import (
    DeviceDriverDescriptor,
    HostCheck,
    HostCheckResult,
    PluginContext,
    RouteDescriptor,
    VMStatus,
    VMView,
    hookimpl,
)

from .driver import VfioDriver
from .routes import routes
from .settings import VfioSettings
from .sysfs import VFIO_PCI

#: States in which a VM holds its devices; claims of VMs in no such state are released at start.
HOLDING = frozenset({VMStatus.PENDING, VMStatus.STARTING, VMStatus.RUNNING, VMStatus.STOPPING})

_lock = threading.Lock()
#: The driver of the running daemon, for the routes (registered before any daemon is configured).
_serving: VfioDriver | None = None


def _serving_driver() -> VfioDriver:
    """The running daemon's driver (503 between two daemons)."""
    with _lock:
        if _serving is None:
            raise falcon.HTTPServiceUnavailable(description="the vfio plugin is not started yet; try again")
        return _serving


def check_vfio_driver(context: PluginContext) -> HostCheckResult:
    """The vfio-pci driver is loaded."""
    driver = VfioDriver(context)
    if driver.sysfs.has_driver(VFIO_PCI):
        return HostCheckResult("pass", f"{driver.sysfs.driver_dir(VFIO_PCI)} is present")
    return HostCheckResult("warn", "the vfio-pci driver is not loaded", fix="modprobe vfio-pci")


def check_iommu(context: PluginContext) -> HostCheckResult:
    """The host has IOMMU groups."""
    if VfioDriver(context).sysfs.iommu_enabled():
        return HostCheckResult("pass", "the IOMMU is enabled (IOMMU groups exist)")
    return HostCheckResult(
        "warn",
        "no IOMMU groups: PCI devices cannot be passed through",
        fix="enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (or amd_iommu=on)",
    )


def check_allowed_devices(context: PluginContext) -> HostCheckResult:
    """Every device of ``VOLANT_VFIO_ALLOWED_DEVICES`` exists."""
    driver = VfioDriver(context)
    if not driver.allowed:
        return HostCheckResult("pass", "no device is allowed for passthrough (VOLANT_VFIO_ALLOWED_DEVICES)")
    missing = sorted(a for a in driver.allowed if not driver.sysfs.exists(a))
    if missing:
        return HostCheckResult(
            "fail",
            f"VOLANT_VFIO_ALLOWED_DEVICES lists devices this host lacks: {', '.join(missing)}",
            fix="list devices of /sys/bus/pci/devices only",
        )
    return HostCheckResult("pass", f"allowed for passthrough: {', '.join(sorted(driver.allowed))}")


@hookimpl
def volant_settings() -> list[type[BaseModel]]:
    """Declare :class:`VfioSettings`."""
    return [VfioSettings]


@hookimpl
def volant_device_drivers() -> list[DeviceDriverDescriptor]:
    """Register ``vfio-pci`` for PCI devices."""
    return [
        DeviceDriverDescriptor(
            "vfio-pci", VfioDriver, bus="pci", description="allowlisted host PCI devices, bound to vfio-pci"
        )
    ]


@hookimpl
def volant_host_checks() -> list[HostCheck]:
    """Register the ``vfio-pci``, ``iommu`` and ``vfio-allowed-devices`` checks."""
    return [
        HostCheck(name="vfio-pci", run=check_vfio_driver),
        HostCheck(name="iommu", run=check_iommu),
        HostCheck(name="vfio-allowed-devices", run=check_allowed_devices),
    ]


@hookimpl
def volant_api_routes() -> list[RouteDescriptor]:
    """Mount ``/api/v1/vfio/devices`` (see :mod:`.routes`)."""
    return routes(_serving_driver)


@hookimpl
def volant_daemon_started(vms: list[VMView], context: PluginContext) -> None:
    """Serve the routes; give back the devices of VMs that hold none any more (deleted, stopped or
    crashed while no daemon ran to release them).
    """
    global _serving
    driver = VfioDriver(context)
    holding = {vm.name: vm for vm in vms if vm.status in HOLDING}
    for claim in driver.claims.all():
        if claim.vm not in holding:
            context.log.info("device %s: vm %s holds it no more; giving it back", claim.address, claim.vm)
            driver.release(claim)
    with _lock:
        _serving = driver


@hookimpl
def volant_daemon_stopping() -> None:
    """Stop serving the routes (devices stay with their VMs, which keep running)."""
    global _serving
    with _lock:
        _serving = None
