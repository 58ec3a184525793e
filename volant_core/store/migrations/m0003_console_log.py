"""``vms.console_log``: the file where the hypervisor keeps the guest's console output.

Kept after the VM stops, so its logs can still be read.
"""

from __future__ import annotations

import peewee

STATEMENTS = ("ALTER TABLE vms ADD COLUMN console_log TEXT",)


def up(db: peewee.Database) -> None:
    """Add the column (NULL for existing VMs until their next boot)."""
    for statement in STATEMENTS:
        db.execute_sql(statement)
