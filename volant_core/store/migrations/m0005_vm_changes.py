"""``vm_changes``: a counter that every change to a VM or to its configuration moves on.

Triggers on ``vms``, ``vm_configs`` and ``vm_config_history`` add one per row
inserted, updated or deleted, in the transaction that changes the row (a rollback
takes the count back with it), whichever connection or process writes. Equal counts
therefore mean the same VMs and configurations: readers key what they derive from
them (the API's VM list) by it.
"""

from __future__ import annotations

import peewee

TABLES = ("vms", "vm_configs", "vm_config_history")
EVENTS = ("INSERT", "UPDATE", "DELETE")


def up(db: peewee.Database) -> None:
    """Create the one-row counter and the triggers that move it on."""
    db.execute_sql("CREATE TABLE vm_changes (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL)")
    db.execute_sql("INSERT INTO vm_changes (id, count) VALUES (1, 0)")
    for table in TABLES:
        for event in EVENTS:
            db.execute_sql(
                f"CREATE TRIGGER {table}_{event.lower()}_counted AFTER {event} ON {table} "
                "BEGIN UPDATE vm_changes SET count = count + 1; END"
            )
