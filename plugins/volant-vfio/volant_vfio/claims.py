"""Which VM holds which host PCI device, on disk so that it survives a daemon restart.

One file per claimed device, ``<directory>/<BDF>.json``, holding the VM and the driver the device
had before it was bound to vfio-pci (restored when the claim is released). A claim is taken with
``link()``, which fails when the file exists: two VMs racing for a device cannot both win, and a
claim file is never seen half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from volant_core.sdk import ConflictError


@dataclass(frozen=True)
class Claim:
    """Device ``address`` is held by VM ``vm``; ``original_driver`` is the host's (None: unbound)."""

    address: str
    vm: str
    original_driver: str | None


def conflict(claim: Claim, vm: str) -> ConflictError:
    """The 409 for VM ``vm`` asking for a device ``claim`` gives to another VM."""
    return ConflictError(
        f"devices.pci_passthrough: device {claim.address} is attached to vm {claim.vm!r}; "
        f"stop or delete {claim.vm!r} before giving it to {vm!r}"
    )


class ClaimStore:
    """The claims kept in ``directory`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        """Keep the claims in ``directory``."""
        self.directory = directory

    def holder(self, address: str) -> Claim | None:
        """The claim on ``address``, or None when no VM holds it."""
        try:
            return Claim(**json.loads(self._path(address).read_text()))
        except FileNotFoundError:
            return None

    def take(self, vm: str, address: str, original_driver: str | None) -> Claim:
        """Claim ``address`` for ``vm`` (remembering ``original_driver``) and return the claim; the
        claim ``vm`` already holds is returned unchanged. :class:`ConflictError` when another VM
        holds it.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        claim = Claim(address, vm, original_driver)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".claim-")
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(asdict(claim), file)
            os.link(temporary, self._path(address))
        except FileExistsError:
            held = self.holder(address)
            if held is None:  # released meanwhile: try again
                return self.take(vm, address, original_driver)
            if held.vm != vm:
                raise conflict(held, vm) from None
            return held
        finally:
            os.unlink(temporary)
        return claim

    def of_vm(self, vm: str) -> list[Claim]:
        """Every claim ``vm`` holds, by address."""
        return [claim for claim in self.all() if claim.vm == vm]

    def all(self) -> list[Claim]:
        """Every claim, by address."""
        if not self.directory.is_dir():
            return []
        found = (self.holder(path.stem) for path in sorted(self.directory.glob("*.json")))
        return [claim for claim in found if claim is not None]

    def drop(self, address: str) -> None:
        """Release the claim on ``address`` (none is fine)."""
        self._path(address).unlink(missing_ok=True)

    def _path(self, address: str) -> Path:
        return self.directory / f"{address}.json"
