"""The files of a VM's NoCloud seed: its documents byte for byte, a meta-data when none is given, and
kestrel's seed plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from volant_core.sdk import SEED_PLAN_FILE, CloudInit, LaunchError, SeedPlanError, VMView, seed_plan

#: The NoCloud file names, as cloud-init looks for them at the root of the seed.
USER_DATA, META_DATA, NETWORK_CONFIG = "user-data", "meta-data", "network-config"


def instance_id(vm: VMView) -> str:
    """The VM's cloud-init instance id: stable across its boots, new for a VM created again under the
    same name (it hashes the name with the creation time).
    """
    digest = hashlib.sha256(f"{vm.name}\0{vm.created_at or ''}".encode()).hexdigest()[:16]
    return f"volant-{vm.name}-{digest}"


def default_meta_data(vm: VMView) -> str:
    """The meta-data of a VM that gives none: its instance id and its name as ``local-hostname``."""
    return f"instance-id: {instance_id(vm)}\nlocal-hostname: {vm.name}\n"


@dataclass(frozen=True)
class SeedFiles:
    """The files a seed holds, by name (file names are fixed: nothing the user gives names a file)."""

    files: dict[str, bytes]


def seed_files(vm: VMView, cloud_init: CloudInit) -> SeedFiles:
    """The files of ``vm``'s seed for ``cloud_init`` (merged already): ``user-data`` (empty when not
    given), ``meta-data`` (:func:`default_meta_data` when not given), ``network-config`` when given,
    and kestrel's plan. Documents are written exactly as given.
    """
    user_data = cloud_init.user_data.content if cloud_init.user_data is not None else None
    meta_data = cloud_init.meta_data.content if cloud_init.meta_data is not None else None
    network = cloud_init.network_config.content if cloud_init.network_config is not None else None
    user_data = user_data or ""
    meta_data = meta_data if meta_data is not None else default_meta_data(vm)
    try:
        plan = seed_plan(user_data, meta_data, network)
    except SeedPlanError as err:  # the core checked the documents already; a stored VM may predate that
        raise LaunchError(f"vm {vm.name}: cloud_init.{err.document}: {err.message}") from None
    files = {USER_DATA: user_data.encode(), META_DATA: meta_data.encode()}
    if network is not None:
        files[NETWORK_CONFIG] = network.encode()
    files[SEED_PLAN_FILE] = json.dumps(plan, indent=1, sort_keys=True).encode()
    return SeedFiles(files)
