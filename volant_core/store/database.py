"""The SQLite connection: one file, WAL, foreign keys on, one connection per thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee

from volant_core.errors import DiskFullError, StoreUnavailableError

#: Longest a transaction waits for another of the same daemon to end (SQLite's ``busy_timeout`` too).
WRITE_WAIT_S = 5.0


#: Applied to every new connection (each thread opens its own).
PRAGMAS: tuple[tuple[str, str | int], ...] = (
    ("journal_mode", "wal"),
    ("foreign_keys", 1),
    ("busy_timeout", int(WRITE_WAIT_S * 1000)),
    ("synchronous", "normal"),
)


#: What SQLite says when another connection holds the lock past ``busy_timeout``.
_BUSY_MESSAGES = ("database is locked", "database table is locked", "database is busy")
#: What SQLite says when a write finds no room (SQLITE_FULL).
_FULL_MESSAGES = ("database or disk is full", "disk is full")


@contextlib.contextmanager
def store_faults(path: str) -> Iterator[None]:
    """Turn SQLite's "locked" and "disk full" errors on the database at ``path`` into 503 errors
    that say what happened and what to do (see :class:`~volant_core.errors.StoreUnavailableError`).
    """
    try:
        yield
    except peewee.OperationalError as err:
        text = str(err)
        if any(message in text for message in _BUSY_MESSAGES):
            raise StoreUnavailableError(
                f"the state database {path} stayed locked by another process for {WRITE_WAIT_S:g} s "
                f"({text}); nothing was changed: retry, and stop whatever holds the lock "
                "(a sqlite3 shell, a backup) if this repeats"
            ) from err
        if any(message in text for message in _FULL_MESSAGES):
            raise DiskFullError(
                f"the disk holding the state database {path} is full ({text}); nothing was changed: "
                "free space there, then retry"
            ) from err
        raise


class QueuedWritersDatabase(peewee.SqliteDatabase):
    """SQLite whose transactions of one process queue on a lock before ``BEGIN IMMEDIATE``.

    SQLite's busy handler polls with growing sleeps, so under CPU pressure one writer can keep
    losing the lock to the others until its ``busy_timeout`` runs out ("database is locked")
    although each transaction is short. Threads of one daemon wait on a lock instead, woken as soon
    as it is free; SQLite's own waiting is left to writers of other processes.

    A lock held past :data:`WRITE_WAIT_S`, by this daemon or another process, and a full disk
    raise :class:`~volant_core.errors.StoreUnavailableError` (503) instead of peewee's error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._writer = threading.Lock()
        self._holding = threading.local()

    def begin(self, lock_type: str | None = None) -> None:
        """Wait for this process's other transactions to end, then begin."""
        if not self._writer.acquire(timeout=WRITE_WAIT_S):
            raise StoreUnavailableError(
                f"the state database {self.database} stayed locked by another transaction of this "
                f"daemon for {WRITE_WAIT_S:g} s; nothing was changed: retry"
            )
        self._holding.held = True
        try:
            with store_faults(self.database):
                super().begin(lock_type)
        except BaseException:
            self._let_go()
            raise

    def commit(self) -> None:
        """Commit and let the next transaction of this process begin."""
        with store_faults(self.database):
            super().commit()
        self._let_go()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Run ``sql``; a lock held too long or a full disk becomes a 503 error (see the class)."""
        with store_faults(self.database):
            return super().execute_sql(sql, params)

    def rollback(self) -> None:
        """Roll back and let the next transaction of this process begin (SQLite has rolled back
        itself already after some errors, a full disk among them: nothing is left to undo then).
        """
        try:
            if self.connection().in_transaction:
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
