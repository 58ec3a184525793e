"""The versioned configuration of each VM: reading it, changing it, rolling it back, and the checks
a configuration passes before it is stored.

Every change is stored as the next version (the history is never rewritten) and published as
``VM_CONFIG_CHANGED``; a running VM keeps the configuration it booted with until its next start.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from volant_core.confinement import ArtifactPolicy
from volant_core.errors import NotFoundError, ValidationError
from volant_core.events import EventType
from volant_core.launch import socket_room_problem
from volant_core.orchestrator.admission import HOLDING_STATES
from volant_core.orchestrator.context import OrchestratorContext
from volant_core.orchestrator.identity import mac_address
from volant_core.orchestrator.publishing import check_expose
from volant_core.orchestrator.requirements import check_requirements, devices_of
from volant_core.orchestrator.vmconfig import ConfigPatch, VMConfig, apply_patch, validate_config
from volant_core.settings import variable_of
from volant_core.store import ConfigRecord, VMRecord
from volant_core.vm import VMStatus, VMView


class Configurations:
    """Configuration reads and changes of existing VMs, each under the VM's lock."""

    def __init__(self, context: OrchestratorContext) -> None:
        self._context = context
        self._artifacts = ArtifactPolicy.from_settings(context.settings)

    def current(self, name: str) -> ConfigRecord:
        """The current configuration version of VM ``name``."""
        with self._context.locks(name):
            return self._context.store.configs.current(self._context.store.vms.get_by_name(name).id)

    def history(self, name: str, limit: int | None = None) -> list[ConfigRecord]:
        """The configuration versions of VM ``name``, newest first, at most ``limit`` (None: all)."""
        with self._context.locks(name):
            return self._context.store.configs.history(self._context.store.vms.get_by_name(name).id, limit)

    def patch(self, name: str, patch: ConfigPatch) -> ConfigRecord:
        """Merge ``patch`` into the current configuration and store the result as the next version."""
        with self._context.locks(name):
            record = self._context.store.vms.get_by_name(name)
            current = self._context.views.config(self._context.store.configs.current(record.id))
            return self._store_config(record, apply_patch(current, patch), "configuration changed")

    def rollback(self, name: str, version: int) -> ConfigRecord:
        """Store configuration ``version`` again as the next version."""
        with self._context.locks(name):
            record = self._context.store.vms.get_by_name(name)
            try:
                earlier = self._context.store.configs.get_version(record.id, version)
            except NotFoundError:
                setting = variable_of("config_history")
                raise NotFoundError(
                    f"version: vm {name!r} has no configuration version {version} (versions older than "
                    f"the newest {self._context.settings.config_history} are deleted, {setting}); "
                    f"see GET /api/v1/vms/{name}/config/history",
                    field="version",
                ) from None
            message = f"configuration rolled back to version {version}"
            return self._store_config(record, validate_config(earlier.config), message)

    def validate(self, name: str, config: VMConfig, record: VMRecord | None) -> None:
        """Refuse ``config`` for VM ``name`` (a new one when ``record`` is None) when a new VM's
        directory leaves no room for its sockets, when it is bigger than the host or its metadata
        is over the limit (:meth:`~volant_core.orchestrator.admission.Admission.check_config`), its
        hypervisor or
        network mode is not installed or cannot run it, a field it sets has nothing to honour it
        (:func:`~volant_core.orchestrator.requirements.check_requirements`), it publishes a host port
        twice or one another VM's configuration publishes
        (:func:`~volant_core.orchestrator.publishing.check_expose`), it names host files
        outside the artifact directories, its device driver refuses its devices, or a
        ``volant_vm_validate`` implementation rejects it.
        """
        if record is None and (problem := socket_room_problem(self._context.settings.runtime_dir / name)):
            raise ValidationError(f"name: {problem}", field="name")
        backends = self._context.backends
        self._context.admission.check_config(config)
        backends.launcher(backends.hypervisor_of(config), field="hypervisor")
        self._artifacts.check_all(config.artifacts())
        check_requirements(config, backends)
        check_expose(name, config, self._context.store, backends)
        view = self._draft_view(name, config, record)
        if (devices := devices_of(config)) is not None:
            backends.device_driver("pci", field="devices.pci_passthrough").validate(view, devices)
        self._context.plugins.calls.validate("volant_vm_validate", vm=view)

    def _store_config(self, record: VMRecord, config: VMConfig, message: str) -> ConfigRecord:
        """Store ``config`` as the VM's next version unless it equals the current one (lock held)."""
        config = self._context.backends.resolved(config)
        self.validate(record.name, config, record)
        current = self._context.store.configs.current(record.id)
        document = config.to_json()
        if document == current.config:
            return current
        if record.status in HOLDING_STATES and document["resources"] != current.config["resources"]:
            self._context.admission.check_totals(record.name, config.resources)
        keep = self._context.settings.config_history
        stored = self._context.store.configs.put(record.id, document, keep=keep)
        pending = self._context.views.view_of(record).restart_pending
        self._context.transitions.emit(
            EventType.VM_CONFIG_CHANGED, record, message, version=stored.version, restart_pending=pending
        )
        return stored

    def _draft_view(self, name: str, config: VMConfig, record: VMRecord | None) -> VMView:
        """The view ``volant_vm_validate`` sees: the VM (a new one when ``record`` is None) as
        ``config`` would boot it, before anything is written.
        """
        booted: dict[str, Any] = {
            "runtime": config.runtime,
            "plugin": config.plugin,
            "hypervisor": self._context.backends.hypervisor_of(config),
            "network_mode": self._context.backends.network_of(config).mode,
            "cpu_cores": config.resources.cpu_cores,
            "memory_mb": config.resources.memory_mb,
            "kernel_cmdline": config.kernel_cmdline,
            "config": config.to_json(),
        }
        if record is not None:
            return replace(self._context.views.view_of(record), **booted)
        return VMView(
            name=name,
            status=VMStatus.PENDING,
            mac_address=mac_address(name),
            vsock_cid=0,
            runtime_dir=self._context.settings.runtime_dir / name,
            **booted,
        )
