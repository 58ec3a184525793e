"""``vms.config_version``: the configuration version a VM's VMM was last booted with.

Before this migration no configuration ever changed after create, so every
existing VM runs (or last ran) its current version.
"""

from __future__ import annotations

import peewee

STATEMENTS = (
    "ALTER TABLE vms ADD COLUMN config_version INTEGER CHECK (config_version >= 1)",
    "UPDATE vms SET config_version = (SELECT version FROM vm_configs WHERE vm_configs.vm_id = vms.id)",
)


def up(db: peewee.Database) -> None:
    """Add the column and fill it with each VM's current version."""
    for statement in STATEMENTS:
        db.execute_sql(statement)
