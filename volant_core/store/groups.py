"""The ``vm_groups`` table: deployments (a VM configuration and a replica count)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from volant_core.errors import NotFoundError
from volant_core.store.integrity import integrity_errors
from volant_core.store.models import VMGroup, utcnow
from volant_core.store.records import GroupRecord
from volant_core.store.repository import Repository


class GroupRepository(Repository):
    """Deployments, keyed by name. Deleting one leaves its VMs in place with ``group_id`` NULL."""

    def create(self, name: str, config: Mapping[str, Any], replicas: int) -> GroupRecord:
        """Create deployment ``name``; :class:`ConflictError` if the name is taken."""
        now = utcnow()
        row = {"name": name, "config": dict(config), "replicas": replicas}
        row |= {"created_at": now, "updated_at": now}
        with self._atomic(), integrity_errors("deployment", row):
            VMGroup.insert(**row).execute(self._db)
            return self.get(name)

    def get(self, name: str) -> GroupRecord:
        """Deployment ``name``; :class:`NotFoundError` if there is none."""
        return GroupRecord(**self._one(VMGroup.select().where(VMGroup.name == name), _missing(name)))

    def list(self) -> builtins.list[GroupRecord]:
        """All deployments, by name."""
        return [GroupRecord(**row) for row in self._rows(VMGroup.select().order_by(VMGroup.name))]

    def update(
        self, name: str, *, config: Mapping[str, Any] | None = None, replicas: int | None = None
    ) -> GroupRecord:
        """Replace the configuration and/or the replica count of deployment ``name``."""
        changes: dict[str, Any] = {"updated_at": utcnow()}
        if config is not None:
            changes["config"] = dict(config)
        if replicas is not None:
            changes["replicas"] = replicas
        with self._atomic(), integrity_errors("deployment", changes):
            if not VMGroup.update(**changes).where(VMGroup.name == name).execute(self._db):
                raise NotFoundError(_missing(name))
            return self.get(name)

    def delete(self, name: str) -> None:
        """Delete deployment ``name``."""
        if not VMGroup.delete().where(VMGroup.name == name).execute(self._db):
            raise NotFoundError(_missing(name))


def _missing(name: str) -> str:
    return f"deployment {name!r} not found"
