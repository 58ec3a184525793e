"""The ``events`` table: the persisted event stream that SSE clients resume from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from volant_core.store.models import Event, utcnow
from volant_core.store.records import EventRecord
from volant_core.store.repository import Repository
from volant_core.store.statements import Table

_EVENTS = Table(Event)


class EventRepository(Repository):
    """Append-only events with monotonic ids (AUTOINCREMENT: an id is never reused, even after a prune)."""

    def append(self, event_type: str, payload: Mapping[str, Any], vm_name: str | None = None) -> int:
        """Store an event; its id, greater than every id handed out before.

        Only the id is read back (the rowid of the insert): the daemon appends one event per
        change, and reading the row back (``RETURNING``, its payload parsed again) cost more than
        the insert (issue 11). :meth:`since` reads events as stored.
        """
        row = {"type": event_type, "vm_name": vm_name, "payload": dict(payload), "created_at": utcnow()}
        return _EVENTS.insert(self._db, row)

    def since(self, after_id: int, limit: int | None = None) -> list[EventRecord]:
        """Stored events with an id greater than ``after_id``, oldest first, at most ``limit``."""
        tail = 'ORDER BY "id"' + ("" if limit is None else " LIMIT ?")
        params = (after_id,) if limit is None else (after_id, limit)
        return [EventRecord(**row) for row in _EVENTS.rows(self._db, '"id" > ?', params, tail=tail)]

    def latest_id(self) -> int:
        """The id of the newest event ever appended (pruned or not); 0 before the first."""
        sql = "SELECT seq FROM sqlite_sequence WHERE name = ?"
        row = self._db.execute_sql(sql, (Event._meta.table_name,)).fetchone()
        return int(row[0]) if row else 0

    def prune(self, keep: int) -> int:
        """Delete all but the newest ``keep`` events; return how many were deleted."""
        if keep < 0:
            raise ValueError(f"keep must be >= 0, not {keep}")
        with self._atomic():
            newest_dropped = (
                Event.select(Event.id).order_by(Event.id.desc()).limit(1).offset(keep).scalar(self._db)
            )
            if newest_dropped is None:
                return 0
            deleted: int = Event.delete().where(Event.id <= newest_dropped).execute(self._db)
            return deleted
