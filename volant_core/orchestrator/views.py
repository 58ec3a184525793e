"""Turning a stored VM (its row and its configuration versions) into the :class:`VMView` everyone sees."""

from __future__ import annotations

from volant_core.orchestrator.backends import Backends
from volant_core.orchestrator.health import HealthBoard
from volant_core.orchestrator.parsed import ParsedConfigs
from volant_core.orchestrator.publishing import published_ports
from volant_core.orchestrator.vmconfig import VMConfig, needs_restart
from volant_core.store import ConfigRecord, Store, VMRecord
from volant_core.vm import ACTIVE_STATES, VMStatus, VMView


class VMViews:
    """Builds views from the store: what a VM last booted with, and its current configuration; and
    from ``health``, what its running workload's health checks say.
    """

    def __init__(self, store: Store, backends: Backends, health: HealthBoard) -> None:
        self._store = store
        self._backends = backends
        self._health = health
        self._parsed = ParsedConfigs()

    def config(self, stored: ConfigRecord) -> VMConfig:
        """The configuration version ``stored`` holds, parsed (once per version: :class:`ParsedConfigs`)."""
        return self._parsed.of(stored)

    def get(self, name: str) -> VMView:
        """The view of VM ``name``; NotFoundError if there is none."""
        return self.view_of(self._store.vms.get_by_name(name))

    def views_of(self, records: list[VMRecord]) -> list[VMView]:
        """:meth:`view_of` each record, their configurations read in two queries for all.

        A VM deleted since ``records`` were read (it has no configuration any more) is left out.
        """
        currents = self._store.configs.current_many([r.id for r in records])
        records = [r for r in records if r.id in currents]
        stale = {
            r.id: r.config_version
            for r in records
            if r.config_version is not None and r.config_version != currents[r.id].version
        }
        applied = self._store.configs.versions(stale)
        return [self.view_of(r, currents[r.id], applied.get(r.id, currents[r.id])) for r in records]

    def view_of(
        self, record: VMRecord, current: ConfigRecord | None = None, applied: ConfigRecord | None = None
    ) -> VMView:
        """The view of ``record``; its ``current`` and ``applied`` configurations are read if not given."""
        return self.view_and_booted(record, current, applied)[0]

    def view_and_booted(
        self, record: VMRecord, current: ConfigRecord | None = None, applied: ConfigRecord | None = None
    ) -> tuple[VMView, VMConfig]:
        """The view of ``record`` and the configuration its VMM was last booted with (its current one
        before the first boot: what its host resources were acquired for), from one read of its
        configurations; ``current`` and ``applied`` are read if not given.
        """
        if current is None:
            current = self._store.configs.current(record.id)
        if applied is None:
            applied = self._applied(record, current)
        booted = self.config(applied)
        network_mode = self._backends.network_of(booted).mode
        active = record.status in ACTIVE_STATES
        running = record.status == VMStatus.RUNNING
        health, health_reason = self._health.of(record.name) if running else (None, None)
        view = VMView(
            name=record.name,
            status=VMStatus(record.status),
            runtime=record.runtime,
            plugin=record.plugin,
            hypervisor=record.hypervisor,
            network_mode=network_mode,
            cpu_cores=record.cpu_cores,
            memory_mb=record.memory_mb,
            mac_address=record.mac_address,
            vsock_cid=record.vsock_cid,
            runtime_dir=record.runtime_dir,
            kernel_cmdline=record.kernel_cmdline,
            ip_address=record.ip_address,
            pid=record.pid,
            accelerator=record.accelerator,
            status_reason=record.status_reason,
            console_socket=str(record.console_socket) if record.console_socket else None,
            created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(),
            config_version=current.version,
            restart_pending=active and _differ_at_boot(applied, current),
            health=health,
            health_reason=health_reason,
            published_ports=published_ports(booted, network_mode, record.ip_address) if active else (),
            config=current.config,
        )
        return view, booted

    def _applied(self, record: VMRecord, current: ConfigRecord) -> ConfigRecord:
        """The configuration the VMM was last booted with (``current`` before the first boot)."""
        if record.config_version in (None, current.version):
            return current
        return self._store.configs.get_version(record.id, record.config_version)


def _differ_at_boot(applied: ConfigRecord, current: ConfigRecord) -> bool:
    """Whether the VM's ``current`` configuration changed a key read at boot since ``applied`` (the
    version its VMM booted). One version is one document: the same version needs no comparison.
    """
    return applied.version != current.version and needs_restart(applied.config, current.config)
