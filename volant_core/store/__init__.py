"""Volant's state in SQLite: peewee models, numbered migrations, one repository per table.

Open it with :func:`open_store`; repositories return frozen records
(:mod:`volant_core.store.records`) and raise :class:`~volant_core.errors.ConflictError`
on a clash with existing rows and :class:`~volant_core.errors.NotFoundError`
for missing ones.
"""

from volant_core.store.records import (
    ConfigRecord,
    EventRecord,
    GroupRecord,
    IdempotencyRecord,
    LeaseRecord,
    RuntimeRecord,
    VMRecord,
)
from volant_core.store.store import Store, open_store

__all__ = [
    "ConfigRecord",
    "EventRecord",
    "GroupRecord",
    "IdempotencyRecord",
    "LeaseRecord",
    "RuntimeRecord",
    "Store",
    "VMRecord",
    "open_store",
]
