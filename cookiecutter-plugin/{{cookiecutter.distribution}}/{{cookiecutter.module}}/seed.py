"""The seed builder: writes the configuration disk a VM's guest reads its cloud-init data from.

As generated, the seed is a plain file holding the VM's documents as JSON (build a real image
here: a vfat or ISO 9660 NoCloud seed). volantd builds it again before every boot, attaches it
read-only as the last disk and removes its directory when the VM's resources are released.
"""

from __future__ import annotations

import json
from pathlib import Path

from volant_core.sdk import CloudInit, DiskSpec, VMView


class SeedBuilder:
    """Builds seeds (implements volant-core's ``SeedBuilder`` protocol)."""

    def build(self, vm: VMView, cloud_init: CloudInit, directory: Path) -> DiskSpec:
        """Write ``vm``'s seed from ``cloud_init`` into ``directory`` (empty, the VM's own); its disk."""
        documents = {
            "instance-id": vm.name,
            "user-data": cloud_init.user_data.content if cloud_init.user_data else None,
            "meta-data": cloud_init.meta_data.content if cloud_init.meta_data else None,
            "network-config": cloud_init.network_config.content if cloud_init.network_config else None,
        }
        seed = directory / "seed.json"
        seed.write_text(json.dumps(documents, indent=2))
        return DiskSpec(path=seed, readonly=True, format="raw")
