"""Turn SQLite constraint failures into the Volant errors callers can act on."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import peewee

from volant_core.errors import ConflictError, NotFoundError, ValidationError, VolantError


@contextmanager
def integrity_errors(entity: str, values: Mapping[str, Any], missing: str | None = None) -> Iterator[None]:
    """Translate ``peewee.IntegrityError`` raised inside the block.

    * UNIQUE -> :class:`ConflictError` naming the column and the value from ``values``;
    * FOREIGN KEY -> :class:`NotFoundError` with the ``missing`` message;
    * CHECK and NOT NULL -> :class:`ValidationError`.
    """
    try:
        yield
    except peewee.IntegrityError as exc:
        raise _translate(str(exc), entity, values, missing) from exc


def _translate(text: str, entity: str, values: Mapping[str, Any], missing: str | None) -> VolantError:
    kind, _, detail = text.partition(" constraint failed")
    columns = [part.strip().rpartition(".")[2] for part in detail.lstrip(": ").split(",") if part.strip()]
    if kind == "UNIQUE":
        taken = " and ".join(f"{column} {values.get(column)!r}" for column in columns)
        return ConflictError(f"{entity} with {taken} already exists", field=columns[0])
    if kind == "FOREIGN KEY":
        return NotFoundError(missing or f"the {entity} refers to a row that does not exist")
    if kind == "NOT NULL":
        return ValidationError(f"{columns[0]}: required for {entity}", field=columns[0])
    return ValidationError(f"invalid {entity}: {text}")
