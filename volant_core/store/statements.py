"""Plain SQL for the repositories' statements, with the models' own field conversions.

peewee builds a statement's text from its expression tree on every call: about a
millisecond for a one-row lookup, most of a create+delete's cost (issue 11). A
:class:`Table` writes the text of a model's statements with string formatting
instead and converts values with the model's fields (``db_value`` on the way in,
``python_value`` on the way out), so rows read back exactly as peewee returns them.
Statements run through ``db.execute_sql``: peewee's per-thread connection, its
transactions, and its exception types (``peewee.IntegrityError``) all stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import peewee

#: Fields whose values SQLite returns as peewee's ``python_value`` would make them (an INTEGER or
#: TEXT column's int or str, or None): rows read skip the call, a dozen per VM row (issue 11).
_READ_AS_STORED = frozenset({peewee.AutoField, peewee.IntegerField, peewee.TextField})


def _quote(name: str) -> str:
    return f'"{name}"'


class Table:
    """One model's table: SELECT, INSERT, UPDATE and DELETE with SQL ``where`` clauses.

    Rows read hold every field of the model, or only ``fields`` when given.

    ``where`` clauses name columns (e.g. ``'"name" = ?'``) and take ``?`` parameters,
    which are passed as they are: convert them first with :meth:`db_value` when the
    column's field stores something other than the Python value (timestamps, JSON).
    Value mappings (:meth:`insert`, :meth:`update`) are keyed by field name and converted.
    """

    def __init__(self, model: type[peewee.Model], fields: Sequence[str] | None = None) -> None:
        meta = model._meta
        self.name = _quote(meta.table_name)
        self._fields: dict[str, peewee.Field] = {field.name: field for field in meta.sorted_fields}
        read = [self._fields[name] for name in fields] if fields is not None else meta.sorted_fields
        self._names = tuple(field.name for field in read)
        self._readers = tuple(
            (field.name, field.python_value) for field in read if type(field) not in _READ_AS_STORED
        )
        self._columns = ", ".join(_quote(field.column_name) for field in read)
        self._select = f"SELECT {self._columns} FROM {self.name}"
        self._statements: dict[tuple[str, ...], tuple[str, tuple[Callable[[Any], Any], ...]]] = {}

    def column(self, field: str) -> str:
        """The quoted column of ``field`` (for ``where`` and ``order`` clauses)."""
        return _quote(self._fields[field].column_name)

    def rows(
        self, db: peewee.SqliteDatabase, where: str = "", params: Sequence[Any] = (), *, tail: str = ""
    ) -> list[dict[str, Any]]:
        """Every row matching ``where`` as dicts keyed by field name; ``tail`` is ORDER BY/LIMIT text."""
        sql = self._select + (f" WHERE {where}" if where else "") + (f" {tail}" if tail else "")
        return self._read(db.execute_sql(sql, params))

    def insert(self, db: peewee.SqliteDatabase, values: Mapping[str, Any], *, replace: bool = False) -> int:
        """Insert one row (``INSERT OR REPLACE`` with ``replace``); return its rowid."""
        rowid: int = db.execute_sql(*self._insert(values, replace)).lastrowid
        return rowid

    def inserted(
        self, db: peewee.SqliteDatabase, values: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Insert one row and return it as stored (one statement: ``RETURNING``)."""
        sql, params = self._insert(values, replace)
        return self._read(db.execute_sql(f"{sql} RETURNING {self._columns}", params))[0]

    def updated(
        self, db: peewee.SqliteDatabase, changes: Mapping[str, Any], where: str, params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """Set ``changes`` on the rows matching ``where``; return them as stored (``RETURNING``)."""
        assignments, values = self._assignments("UPDATE", changes)
        sql = f"UPDATE {self.name} SET {assignments} WHERE {where} RETURNING {self._columns}"
        return self._read(db.execute_sql(sql, [*values, *params]))

    def delete(self, db: peewee.SqliteDatabase, where: str, params: Sequence[Any]) -> int:
        """Delete the rows matching ``where``; return how many there were."""
        count: int = db.execute_sql(f"DELETE FROM {self.name} WHERE {where}", params).rowcount
        return count

    def _read(self, cursor: Any) -> list[dict[str, Any]]:
        names, readers = self._names, self._readers
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            for name, read in readers:
                row[name] = read(row[name])
        return rows

    def _insert(self, values: Mapping[str, Any], replace: bool) -> tuple[str, list[Any]]:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        columns_and_marks, params = self._assignments(verb, values)
        return f"{verb} INTO {self.name} {columns_and_marks}", params

    def _assignments(self, verb: str, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL naming the columns of ``values`` for ``verb`` (``UPDATE``: ``"a" = ?, ...``; an
        insert: ``("a", ...) VALUES (?, ...)``) and the values converted by their fields. The text
        and the converters are made once per verb and set of columns (issue 11).
        """
        key = (verb, *values)
        known = self._statements.get(key)
        if known is None:
            fields = [self._fields[name] for name in values]
            columns = [_quote(field.column_name) for field in fields]
            if verb == "UPDATE":
                text = ", ".join(f"{column} = ?" for column in columns)
            else:
                text = f"({', '.join(columns)}) VALUES ({marks(columns)})"
            known = self._statements[key] = (text, tuple(field.db_value for field in fields))
        text, converters = known
        return text, [convert(value) for convert, value in zip(converters, values.values(), strict=True)]


def marks(values: Iterable[Any]) -> str:
    """``?, ?, ...``: one parameter mark per value (for ``IN (...)``)."""
    return ", ".join("?" for _ in values)
