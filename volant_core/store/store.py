"""The :class:`Store`: one SQLite database and a repository per table."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import peewee

from volant_core.store.configs import ConfigRepository
from volant_core.store.database import connect
from volant_core.store.events import EventRepository
from volant_core.store.groups import GroupRepository
from volant_core.store.idempotency import IdempotencyRepository
from volant_core.store.ips import IPRepository
from volant_core.store.migrate import migrate
from volant_core.store.runtimes import RuntimeRepository
from volant_core.store.vms import VMRepository


class Store:
    """Volant's persistent state. Safe to share between threads (one connection per thread).

    Repositories: :attr:`vms`, :attr:`configs`, :attr:`plugins`, :attr:`ips`,
    :attr:`groups`, :attr:`events` and
    :attr:`idempotency`. Each call is atomic on its own; wrap
    several in :meth:`transaction` to make them atomic together.
    """

    def __init__(self, db: peewee.SqliteDatabase) -> None:
        self.db = db
        self.vms = VMRepository(db)
        self.configs = ConfigRepository(db)
        self.runtimes = RuntimeRepository(db)
        self.ips = IPRepository(db)
        self.groups = GroupRepository(db)
        self.events = EventRepository(db)
        self.idempotency = IdempotencyRepository(db)

    def transaction(self) -> AbstractContextManager[Any]:
        """A context manager for a ``BEGIN IMMEDIATE`` transaction; nested ones become savepoints.

        The write lock is taken on entry, so reads inside see a state no
        other writer changes until the block ends. An exception rolls back.
        """
        return self.db.atomic()

    def close(self) -> None:
        """Close the calling thread's connection (the next query reopens one)."""
        self.db.close()


def open_store(path: Path) -> Store:
    """Open the database at ``path`` (created with its directory if missing) and migrate it."""
    db = connect(path)
    migrate(db)
    return Store(db)
