"""What every per-table repository shares: the database and the query helpers."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import peewee

from volant_core.errors import NotFoundError


class Repository:
    """Base of the repositories: runs queries on one database and returns plain rows.

    Every write that takes more than one statement runs in a ``BEGIN
    IMMEDIATE`` transaction (a savepoint when the caller already opened
    one with :meth:`volant_core.store.Store.transaction`), and every write
    returns the row as stored: read back inside that transaction, or by the
    writing statement itself (``RETURNING``) when it is the only one.
    """

    def __init__(self, db: peewee.SqliteDatabase) -> None:
        self._db = db

    def _atomic(self) -> AbstractContextManager[Any]:
        """A transaction (or a savepoint when nested)."""
        return self._db.atomic()

    def _rows(self, query: peewee.ModelSelect[Any]) -> list[dict[str, Any]]:
        """All rows of ``query`` as dicts keyed by field name."""
        return list(query.dicts().execute(self._db))

    def _one(self, query: peewee.ModelSelect[Any], missing: str) -> dict[str, Any]:
        """The first row of ``query``; :class:`NotFoundError` with ``missing`` when there is none."""
        return first(self._rows(query.limit(1)), missing)


def first(rows: list[dict[str, Any]], missing: str) -> dict[str, Any]:
    """The first of ``rows``; :class:`NotFoundError` with ``missing`` when there is none."""
    if not rows:
        raise NotFoundError(missing)
    return rows[0]
