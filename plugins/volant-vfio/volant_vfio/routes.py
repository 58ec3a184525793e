"""``/api/v1/vfio/devices``: what the plugin sees of the host's PCI devices, read-only.

* ``GET /api/v1/vfio/devices``: every device of ``VOLANT_VFIO_ALLOWED_DEVICES``, with its IDs,
  driver, IOMMU group and the VM holding it;
* ``GET /api/v1/vfio/devices/{address}``: one device (any the host has);
* ``POST /api/v1/vfio/devices/validate``: the checks a VM's ``devices`` would meet at create
  (body: ``devices`` in the manifest's shape, and optionally ``vm``, the VM that would hold them),
  answered 200 ``{"valid": true}``, or with the refusal's status and message.

Binding and unbinding are not offered (the Go original's ``bind``/``unbind`` routes bound devices
for nobody, past every claim): devices are bound only for the boot of the VM that claims them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import falcon
from pydantic import BaseModel, ConfigDict, Field

from volant_core.sdk import Devices, NotFoundError, RouteDescriptor, operation, parse_body

from .driver import VfioDriver
from .sysfs import BDF

PREFIX = "/api/v1/vfio/devices"
TAGS = ("vfio",)


class DeviceState(BaseModel):
    """One host PCI device as the plugin sees it."""

    address: str = Field(description="PCI address (0000:01:00.0)")
    present: bool = Field(description="whether the host has it")
    allowed: bool = Field(description="whether VOLANT_VFIO_ALLOWED_DEVICES lists it")
    vendor: str | None = Field(None, description="vendor ID (8086), when present")
    device: str | None = Field(None, description="device ID (10fb), when present")
    driver: str | None = Field(None, description="the driver it is bound to (None: unbound)")
    iommu_group: int | None = Field(None, description="its IOMMU group (None: no IOMMU)")
    vm: str | None = Field(None, description="the VM holding it, if any")


class ValidateBody(BaseModel):
    """What ``POST /api/v1/vfio/devices/validate`` checks."""

    model_config = ConfigDict(extra="forbid")
    devices: Devices = Field(description="the devices, as a VM's configuration gives them")
    vm: str = Field("", description="the VM that would hold them (its own claims are no conflict)")


class Valid(BaseModel):
    """The devices passed every check."""

    valid: Literal[True]


class _Resource:
    def __init__(self, driver: Callable[[], VfioDriver]) -> None:
        self._driver = driver

    def _describe(self, driver: VfioDriver, address: str) -> dict[str, object]:
        present = driver.sysfs.exists(address)
        held = driver.claims.holder(address)
        described = driver.sysfs.describe(address).to_dict() if present else {"address": address}
        return {
            **described,
            "present": present,
            "allowed": address in driver.allowed,
            "vm": held.vm if held is not None else None,
        }


class DeviceList(_Resource):
    """``GET /api/v1/vfio/devices``."""

    @operation(response=list[DeviceState], errors=(503,))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The devices VOLANT_VFIO_ALLOWED_DEVICES lists, by address, with their driver and holder."""
        driver = self._driver()
        resp.media = [self._describe(driver, address) for address in sorted(driver.allowed)]


class DeviceItem(_Resource):
    """``GET /api/v1/vfio/devices/{address}``."""

    @operation(response=DeviceState, errors=(404, 503))
    def on_get(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        """One PCI device of the host; 404 when it has none at ``address``."""
        driver = self._driver()
        if not BDF.fullmatch(address) or not driver.sysfs.exists(address):
            raise NotFoundError(f"this host has no PCI device {address!r} (addresses look like 0000:01:00.0)")
        resp.media = self._describe(driver, address)


class DeviceValidation(_Resource):
    """``POST /api/v1/vfio/devices/validate``."""

    @operation(body=ValidateBody, response=Valid, errors=(409, 503))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Whether a VM could be given ``devices``: 200, or the refusal a create would meet."""
        body = parse_body(req, ValidateBody)
        self._driver().check(body.vm, body.devices)
        resp.media = {"valid": True}


def routes(driver: Callable[[], VfioDriver]) -> list[RouteDescriptor]:
    """The plugin's routes, each asking ``driver`` for the daemon's driver."""
    return [
        RouteDescriptor(PREFIX, DeviceList(driver), tags=TAGS),
        RouteDescriptor(PREFIX + "/validate", DeviceValidation(driver), tags=TAGS),
        RouteDescriptor(PREFIX + "/{address}", DeviceItem(driver), tags=TAGS),
    ]
