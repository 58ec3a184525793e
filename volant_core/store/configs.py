"""The ``vm_configs`` and ``vm_config_history`` tables: versioned VM configuration."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from volant_core.store.integrity import integrity_errors
from volant_core.store.models import VM, VMConfig, VMConfigHistory, utcnow
from volant_core.store.records import ConfigRecord
from volant_core.store.repository import Repository, first
from volant_core.store.statements import Table, marks

_CURRENT = Table(VMConfig)
_HISTORY = Table(VMConfigHistory, fields=("vm_id", "version", "config", "updated_at"))
_VMS = Table(VM, fields=("id", "config_version"))
_OF_VM = '"vm_id" = ?'


class ConfigRepository(Repository):
    """A VM's current configuration and every earlier version of it.

    Versions start at 1 and grow by one with every :meth:`put`; each version
    is also kept in the history (up to the number :meth:`put` is told to keep), which is deleted
    with the VM.
    """

    def put(self, vm_id: int, config: Mapping[str, Any], *, keep: int | None = None) -> ConfigRecord:
        """Store ``config`` as the VM's next version; :class:`NotFoundError` if the VM does not exist.

        With ``keep``, the history keeps the newest ``keep`` versions and the one the VM last booted
        with (its ``config_version``): older ones are deleted in the same transaction.
        """
        now = utcnow()
        missing = f"vm id {vm_id} does not exist"
        with self._atomic(), integrity_errors("vm config", {"vm_id": vm_id}, missing=missing):
            sql = f"SELECT version FROM {_CURRENT.name} WHERE {_OF_VM}"
            current = self._db.execute_sql(sql, (vm_id,)).fetchone()
            version = (current[0] if current else 0) + 1
            row = {"vm_id": vm_id, "config": dict(config), "version": version, "updated_at": now}
            _HISTORY.insert(self._db, row)
            if keep is not None:
                self._prune(vm_id, newest_pruned=version - keep)
            return ConfigRecord(**_CURRENT.inserted(self._db, row, replace=True))

    def _prune(self, vm_id: int, newest_pruned: int) -> None:
        """Delete the VM's versions up to ``newest_pruned``, except the one it last booted with."""
        booted = f"(SELECT {_VMS.column('config_version')} FROM {_VMS.name} WHERE {_VMS.column('id')} = ?)"
        where = f'{_OF_VM} AND "version" <= ? AND "version" IS NOT {booted}'
        _HISTORY.delete(self._db, where, (vm_id, newest_pruned, vm_id))

    def current(self, vm_id: int) -> ConfigRecord:
        """The VM's current configuration; :class:`NotFoundError` if it has none."""
        rows = _CURRENT.rows(self._db, _OF_VM, (vm_id,))
        return ConfigRecord(**first(rows, f"vm id {vm_id} has no configuration"))

    def current_many(self, vm_ids: Collection[int]) -> dict[int, ConfigRecord]:
        """The current configuration of each VM of ``vm_ids`` that has one, by VM id (one query)."""
        ids = list(vm_ids)
        rows = _CURRENT.rows(self._db, f'"vm_id" IN ({marks(ids)})', ids)
        return {row["vm_id"]: ConfigRecord(**row) for row in rows}

    def versions(self, wanted: Mapping[int, int]) -> dict[int, ConfigRecord]:
        """Version ``wanted[vm_id]`` of each VM's configuration, by VM id (one query), if it exists."""
        if not wanted:
            return {}
        pairs = ", ".join("(?, ?)" for _ in wanted)
        params = [number for pair in wanted.items() for number in pair]
        rows = _HISTORY.rows(self._db, f'("vm_id", "version") IN (VALUES {pairs})', params)
        return {row["vm_id"]: ConfigRecord(**row) for row in rows}

    def history(self, vm_id: int, limit: int | None = None) -> list[ConfigRecord]:
        """The VM's configurations, newest first, at most ``limit`` of them."""
        tail = 'ORDER BY "version" DESC' + ("" if limit is None else " LIMIT ?")
        params = (vm_id,) if limit is None else (vm_id, limit)
        return [ConfigRecord(**row) for row in _HISTORY.rows(self._db, _OF_VM, params, tail=tail)]

    def get_version(self, vm_id: int, version: int) -> ConfigRecord:
        """One version of the VM's configuration; :class:`NotFoundError` if it never existed."""
        rows = _HISTORY.rows(self._db, f'{_OF_VM} AND "version" = ?', (vm_id, version))
        return ConfigRecord(**first(rows, f"vm id {vm_id} has no configuration version {version}"))
