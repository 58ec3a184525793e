"""The ``plugins`` table: runtime manifests installed through the API."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from volant_core.errors import NotFoundError
from volant_core.store.integrity import integrity_errors
from volant_core.store.models import Plugin, utcnow
from volant_core.store.records import RuntimeRecord
from volant_core.store.repository import Repository, first
from volant_core.store.statements import Table

_PLUGINS = Table(Plugin)


class RuntimeRepository(Repository):
    """Installed runtime manifests, keyed by name."""

    def upsert(
        self, name: str, version: str, manifest: Mapping[str, Any], enabled: bool = True
    ) -> RuntimeRecord:
        """Install ``manifest`` as ``name``, or replace it (keeping ``installed_at``)."""
        now = utcnow()
        row = {
            "name": name,
            "version": version,
            "enabled": enabled,
            "manifest": dict(manifest),
            "installed_at": now,
            "updated_at": now,
        }
        with self._atomic(), integrity_errors("plugin", row):
            (
                Plugin.insert(**row)
                .on_conflict(
                    conflict_target=[Plugin.name],
                    preserve=[Plugin.version, Plugin.enabled, Plugin.manifest, Plugin.updated_at],
                )
                .execute(self._db)
            )
            return self.get(name)

    def get(self, name: str) -> RuntimeRecord:
        """The plugin called ``name``; :class:`NotFoundError` if it is not installed."""
        rows = _PLUGINS.rows(self._db, f"{_PLUGINS.column('name')} = ?", (name,), tail="LIMIT 1")
        return RuntimeRecord(**first(rows, _missing(name)))

    def list(self) -> builtins.list[RuntimeRecord]:
        """All installed plugins, by name."""
        return [RuntimeRecord(**row) for row in self._rows(Plugin.select().order_by(Plugin.name))]

    def set_enabled(self, name: str, enabled: bool) -> RuntimeRecord:
        """Enable or disable plugin ``name``; return the updated row."""
        with self._atomic():
            query = Plugin.update(enabled=enabled, updated_at=utcnow()).where(Plugin.name == name)
            if not query.execute(self._db):
                raise NotFoundError(_missing(name))
            return self.get(name)

    def delete(self, name: str) -> None:
        """Uninstall plugin ``name``."""
        if not Plugin.delete().where(Plugin.name == name).execute(self._db):
            raise NotFoundError(_missing(name))


def _missing(name: str) -> str:
    return f"plugin {name!r} is not installed"
