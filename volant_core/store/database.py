"""The SQLite connection: one file, WAL, foreign keys on, one connection per thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import peewee

#: Longest a transaction waits for another of the same daemon to end (SQLite's ``busy_timeout`` too).
WRITE_WAIT_S = 5.0


#: Applied to every new connection (each thread opens its own).
PRAGMAS: tuple[tuple[str, str | int], ...] = (
    ("journal_mode", "wal"),
    ("foreign_keys", 1),
    ("busy_timeout", int(WRITE_WAIT_S * 1000)),
    ("synchronous", "normal"),
)


class QueuedWritersDatabase(peewee.SqliteDatabase):
    """SQLite whose transactions of one process queue on a lock before ``BEGIN IMMEDIATE``.

    SQLite's busy handler polls with growing sleeps, so under CPU pressure one writer can keep
    losing the lock to the others until its ``busy_timeout`` runs out ("database is locked")
    although each transaction is short. Threads of one daemon wait on a lock instead, woken as soon
    as it is free; SQLite's own waiting is left to writers of other processes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer = threading.Lock()
        self._holding = threading.local()

    def begin(self, lock_type: str | None = None) -> None:
        """Wait for this process's other transactions to end, then begin."""
        if not self._writer.acquire(timeout=WRITE_WAIT_S):
            raise peewee.OperationalError(
                f"database is locked: another transaction of this daemon held it for {WRITE_WAIT_S:g} s"
            )
        self._holding.held = True
        try:
            super().begin(lock_type)
        except BaseException:
            self._let_go()
            raise

    def commit(self) -> None:
        """Commit and let the next transaction of this process begin."""
        super().commit()
        self._let_go()

    def rollback(self) -> None:
        """Roll back and let the next transaction of this process begin."""
        try:
            super().rollback()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        if getattr(self._holding, "held", False):
            self._holding.held = False
            self._writer.release()


def connect(path: Path) -> peewee.SqliteDatabase:
    """Open (creating it and its directory if needed) the database at ``path``.

    Every transaction opened with ``atomic()`` starts with ``BEGIN IMMEDIATE``:
    the write lock is taken up front, so two writers queue instead of failing with
    "database is locked" when a read lock cannot be upgraded (threads of this process on
    :class:`QueuedWritersDatabase`'s lock, other processes on ``busy_timeout``). peewee keeps one
    connection per thread, which makes the
    database safe to share with a threaded WSGI server.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = QueuedWritersDatabase(str(path), pragmas=PRAGMAS, lock_type="IMMEDIATE", thread_safe=True)
    db.connect()
    return db
