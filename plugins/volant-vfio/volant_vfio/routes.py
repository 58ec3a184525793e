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
from typing import Any

import falcon
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from volant_core.sdk import Devices, NotFoundError, RouteDescriptor, ValidationError

from .driver import VfioDriver
from .sysfs import BDF

PREFIX = "/api/v1/vfio/devices"
TAGS = ("vfio",)


class _ValidateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    devices: Devices
    vm: str = ""


class _Resource:
    def __init__(self, driver: Callable[[], VfioDriver]) -> None:
        self._driver = driver

    def _describe(self, driver: VfioDriver, address: str) -> dict[str, Any]:
        present = driver.sysfs.exists(address)
        held = driver.claims.holder(address)
        described: dict[str, Any] = (
            driver.sysfs.describe(address).to_dict() if present else {"address": address}
        )
        return {
            **described,
            "present": present,
            "allowed": address in driver.allowed,
            "vm": held.vm if held is not None else None,
        }


class DeviceList(_Resource):
    """``GET /api/v1/vfio/devices``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The allowlisted devices, by address."""
        driver = self._driver()
        resp.media = [self._describe(driver, address) for address in sorted(driver.allowed)]


class DeviceItem(_Resource):
    """``GET /api/v1/vfio/devices/{address}``."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, address: str) -> None:
        """One device; 404 when the host has none at ``address``."""
        driver = self._driver()
        if not BDF.fullmatch(address) or not driver.sysfs.exists(address):
            raise NotFoundError(f"this host has no PCI device {address!r} (addresses look like 0000:01:00.0)")
        resp.media = self._describe(driver, address)


class DeviceValidation(_Resource):
    """``POST /api/v1/vfio/devices/validate``."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """200 ``{"valid": true}`` when a VM could be given ``devices``; else the refusal."""
        try:
            body = _ValidateBody.model_validate(req.get_media())
        except PydanticValidationError as err:
            raise ValidationError.from_pydantic(err) from None
        self._driver().check(body.vm, body.devices)
        resp.media = {"valid": True}


def routes(driver: Callable[[], VfioDriver]) -> list[RouteDescriptor]:
    """The plugin's routes, each asking ``driver`` for the daemon's driver."""
    return [
        RouteDescriptor(PREFIX, DeviceList(driver), tags=TAGS),
        RouteDescriptor(PREFIX + "/validate", DeviceValidation(driver), tags=TAGS),
        RouteDescriptor(PREFIX + "/{address}", DeviceItem(driver), tags=TAGS),
    ]
