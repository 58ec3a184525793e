"""Apply the numbered migrations of :mod:`volant_core.store.migrations`, once each.

Applied versions are recorded in ``schema_migrations(version, name,
applied_at)``. Each migration runs in its own ``BEGIN IMMEDIATE`` transaction
that also records it, so a failed migration leaves neither tables nor record
behind, and two daemons starting at once never apply one twice.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

import peewee

from volant_core.store import migrations as migrations_package
from volant_core.store.models import SchemaMigration, utcnow

_MODULE_NAME = re.compile(r"m(\d{4})_(\w+)")
_CREATE_LEDGER = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at TEXT NOT NULL
    )
"""


@dataclass(frozen=True)
class Migration:
    """One schema change: its number, its name and the function that applies it."""

    version: int
    name: str
    up: Callable[[peewee.Database], None]


def discover(package: ModuleType = migrations_package) -> list[Migration]:
    """The migrations in ``package`` (modules ``m<NNNN>_<name>``), in version order."""
    found: dict[int, Migration] = {}
    modules: dict[int, str] = {}
    for info in pkgutil.iter_modules(package.__path__):
        match = _MODULE_NAME.fullmatch(info.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations share version {version}: {modules[version]}, {info.name}")
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found[version], modules[version] = Migration(version, match.group(2), module.up), info.name
    return [found[version] for version in sorted(found)]


def applied_versions(db: peewee.Database) -> list[int]:
    """Versions recorded in ``schema_migrations``, ascending."""
    query = SchemaMigration.select(SchemaMigration.version).order_by(SchemaMigration.version)
    return [row.version for row in query.execute(db)]


def migrate(db: peewee.Database, migrations: Iterable[Migration] | None = None) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    db.execute_sql(_CREATE_LEDGER)
    applied: list[int] = []
    for migration in discover() if migrations is None else migrations:
        with db.atomic():
            done = SchemaMigration.select().where(SchemaMigration.version == migration.version).exists(db)
            if done:
                continue
            migration.up(db)
            SchemaMigration.insert(
                version=migration.version, name=migration.name, applied_at=utcnow()
            ).execute(db)
        applied.append(migration.version)
    return applied
