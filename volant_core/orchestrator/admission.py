"""Resource admission: what volantd refuses before it writes a VM or starts one.

* a VM bigger than the host (more vCPUs than the host's CPUs, more memory than its ``MemTotal``)
  and metadata over ``VOLANT_MAX_METADATA_BYTES``: 422, on create, config change and deployment;
* the vCPUs (memory) of the VMs that hold resources (pending, starting, running, stopping) plus
  the new one over the host's CPUs (memory) times ``VOLANT_CPU_OVERCOMMIT``
  (``VOLANT_MEMORY_OVERCOMMIT``): 409, on create, start (manual or automatic) and on a change of
  an active VM's resources;
* one VM more than ``VOLANT_MAX_VMS``: 409, on create.

The total is checked and the VM moved into a holding state under one lock
(:meth:`Admission.reserve`), so two VMs admitted at once cannot both take the last room.
See docs/adr/0027-resource-admission.md.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from volant_core.errors import LimitConflictError, LimitValidationError
from volant_core.hostcapacity import HostCapacity, host_capacity
from volant_core.orchestrator.vmconfig import Resources, VMConfig
from volant_core.settings import Settings, variable_of
from volant_core.store import Store
from volant_core.vm import ACTIVE_STATES, VMStatus

#: States in which a VM holds (or is about to hold) its vCPUs and memory.
HOLDING_STATES = ACTIVE_STATES | {VMStatus.PENDING}


@dataclass(frozen=True)
class _Resource:
    """One resource admission counts: its field of :class:`Resources`, how it is spoken of, the
    host's amount of it and the overcommit setting.
    """

    field: str
    unit: str
    host_field: str
    host_unit: str
    setting: str

    def requested(self, resources: Resources) -> int:
        """How much of it ``resources`` asks for."""
        amount: int = getattr(resources, self.field)
        return amount

    def of_host(self, capacity: HostCapacity) -> int:
        """How much of it the host has."""
        amount: int = getattr(capacity, self.host_field)
        return amount


_RESOURCES = (
    _Resource("cpu_cores", "vCPUs", "cpus", "CPUs", "cpu_overcommit"),
    _Resource("memory_mb", "MiB", "memory_mb", "MiB of memory", "memory_overcommit"),
)


def metadata_size(config: VMConfig) -> int:
    """Bytes of the configuration's ``metadata`` as compact JSON (what the limit measures)."""
    return len(json.dumps(config.metadata, separators=(",", ":"), ensure_ascii=False).encode())


class Admission:
    """The resource limits of one daemon (see the module documentation)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()

    def check_config(self, config: VMConfig) -> None:
        """Refuse (422) a configuration no VM may have here: bigger than the host, or with metadata
        over the limit.
        """
        self.check_size(config.resources)
        size, limit = metadata_size(config), self._settings.max_metadata_bytes
        if size > limit:
            setting = variable_of("max_metadata_bytes")
            raise LimitValidationError(
                f"metadata: {size} bytes of JSON is over the limit of {limit} bytes ({setting}); "
                f"store less, or raise {setting}",
                field="metadata",
            )

    def check_size(self, resources: Resources) -> None:
        """Refuse (422) ``resources`` bigger than the host: more vCPUs than its CPUs, more memory."""
        host = host_capacity()
        for resource in _RESOURCES:
            requested, available = resource.requested(resources), resource.of_host(host)
            if requested > available:
                setting = variable_of(resource.setting)
                raise LimitValidationError(
                    f"resources.{resource.field}: {requested} {resource.unit} is more than this host's "
                    f"{available} {resource.host_unit}; a VM may have at most {available} "
                    f"({setting} raises only the total of all VMs, never one VM's share)",
                    field=f"resources.{resource.field}",
                )

    def check_count(self, name: str) -> None:
        """Refuse (409) a new VM ``name`` when volantd keeps ``VOLANT_MAX_VMS`` already."""
        count, limit = self._store.vms.count(), self._settings.max_vms
        if count >= limit:
            setting = variable_of("max_vms")
            raise LimitConflictError(
                f"vm {name!r}: volantd keeps {count} VMs, its limit ({setting}={limit}); "
                f"delete a VM, or raise {setting}",
                field="name",
            )

    def check_totals(self, name: str, resources: Resources) -> None:
        """Refuse (409) VM ``name`` holding ``resources`` when, with the other VMs that hold
        resources, it would take more than the host's capacity times the overcommit setting.
        """
        host = host_capacity()
        holding, used_by_field = self._store.vms.totals(
            [resource.field for resource in _RESOURCES], statuses=HOLDING_STATES, excluding=name
        )
        for resource in _RESOURCES:
            ratio = getattr(self._settings, resource.setting)
            available = resource.of_host(host)
            capacity = math.floor(available * ratio)
            used = used_by_field[resource.field]
            requested = resource.requested(resources)
            if used + requested > capacity:
                setting = variable_of(resource.setting)
                raise LimitConflictError(
                    f"vm {name!r} needs {requested} {resource.unit}, but the {holding} VMs holding "
                    f"resources use {used} of the {capacity} {resource.unit} this host allows "
                    f"({available} {resource.host_unit} x {setting}={ratio:g}); stop or delete a VM, "
                    f"ask for less, or raise {setting}",
                    field=f"resources.{resource.field}",
                )

    @contextmanager
    def reserve(self, name: str, resources: Resources) -> Iterator[None]:
        """Check ``resources`` against the host and the totals for VM ``name``, and keep other
        admissions waiting until the block, which moves the VM into a holding state, is done.
        """
        self.check_size(resources)
        with self._lock:
            self.check_totals(name, resources)
            yield
