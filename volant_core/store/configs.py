"""The ``vm_configs`` and ``vm_config_history`` tables: versioned VM configuration."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import peewee

from volant_core.store.integrity import integrity_errors
from volant_core.store.models import VMConfig, VMConfigHistory, utcnow
from volant_core.store.records import ConfigRecord
from volant_core.store.repository import Repository


class ConfigRepository(Repository):
    """A VM's current configuration and every earlier version of it.

    Versions start at 1 and grow by one with every :meth:`put`; each version
    is also kept in the history, which is deleted with the VM.
    """

    def put(self, vm_id: int, config: Mapping[str, Any]) -> ConfigRecord:
        """Store ``config`` as the VM's next version; :class:`NotFoundError` if the VM does not exist."""
        now = utcnow()
        missing = f"vm id {vm_id} does not exist"
        with self._atomic(), integrity_errors("vm config", {"vm_id": vm_id}, missing=missing):
            current = VMConfig.select(VMConfig.version).where(VMConfig.vm_id == vm_id).scalar(self._db)
            version = (current or 0) + 1
            row = {"vm_id": vm_id, "config": dict(config), "version": version, "updated_at": now}
            VMConfig.insert(**row).on_conflict_replace().execute(self._db)
            VMConfigHistory.insert(**row).execute(self._db)
            return self.current(vm_id)

    def current(self, vm_id: int) -> ConfigRecord:
        """The VM's current configuration; :class:`NotFoundError` if it has none."""
        query = VMConfig.select().where(VMConfig.vm_id == vm_id)
        return ConfigRecord(**self._one(query, f"vm id {vm_id} has no configuration"))

    def current_many(self, vm_ids: Collection[int]) -> dict[int, ConfigRecord]:
        """The current configuration of each VM of ``vm_ids`` that has one, by VM id (one query)."""
        query = VMConfig.select().where(VMConfig.vm_id.in_(list(vm_ids)))
        return {row["vm_id"]: ConfigRecord(**row) for row in self._rows(query)}

    def versions(self, wanted: Mapping[int, int]) -> dict[int, ConfigRecord]:
        """Version ``wanted[vm_id]`` of each VM's configuration, by VM id (one query), if it exists."""
        if not wanted:
            return {}
        key = peewee.Tuple(VMConfigHistory.vm_id, VMConfigHistory.version)
        query = self._history_query().where(key.in_(list(wanted.items())))
        return {row["vm_id"]: ConfigRecord(**row) for row in self._rows(query)}

    def history(self, vm_id: int, limit: int | None = None) -> list[ConfigRecord]:
        """The VM's configurations, newest first, at most ``limit`` of them."""
        query = (
            self._history_query()
            .where(VMConfigHistory.vm_id == vm_id)
            .order_by(VMConfigHistory.version.desc())
            .limit(limit)
        )
        return [ConfigRecord(**row) for row in self._rows(query)]

    def get_version(self, vm_id: int, version: int) -> ConfigRecord:
        """One version of the VM's configuration; :class:`NotFoundError` if it never existed."""
        query = self._history_query().where(
            (VMConfigHistory.vm_id == vm_id) & (VMConfigHistory.version == version)
        )
        return ConfigRecord(**self._one(query, f"vm id {vm_id} has no configuration version {version}"))

    @staticmethod
    def _history_query() -> peewee.ModelSelect[VMConfigHistory]:
        return VMConfigHistory.select(
            VMConfigHistory.vm_id, VMConfigHistory.version, VMConfigHistory.config, VMConfigHistory.updated_at
        )
