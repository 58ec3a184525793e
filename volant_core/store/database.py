"""The SQLite connection: one file, WAL, foreign keys on, one connection per thread."""

from __future__ import annotations

from pathlib import Path

import peewee

#: Applied to every new connection (each thread opens its own).
PRAGMAS: tuple[tuple[str, str | int], ...] = (
    ("journal_mode", "wal"),
    ("foreign_keys", 1),
    ("busy_timeout", 5000),
    ("synchronous", "normal"),
)


def connect(path: Path) -> peewee.SqliteDatabase:
    """Open (creating it and its directory if needed) the database at ``path``.

    Every transaction opened with ``atomic()`` starts with ``BEGIN IMMEDIATE``:
    the write lock is taken up front, so two writers queue on ``busy_timeout``
    instead of failing with "database is locked" when a read lock cannot be
    upgraded. peewee keeps one connection per thread, which makes the
    database safe to share with a threaded WSGI server.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = peewee.SqliteDatabase(str(path), pragmas=PRAGMAS, lock_type="IMMEDIATE", thread_safe=True)
    db.connect()
    return db
