"""The ``idempotency_keys`` table: which keyed request ran, and what it answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from volant_core.store.models import IdempotencyKey, utcnow
from volant_core.store.records import IdempotencyRecord
from volant_core.store.repository import Repository

#: How long a key is remembered.
KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class KeySlot:
    """Where a key lives: its ``owner`` (digest of the client's credential, '' for none), its
    ``scope`` (``<METHOD> <path>``) and the ``key`` the client chose.
    """

    owner: str
    scope: str
    key: str

    def where(self) -> peewee.Expression:
        """The condition selecting this slot's row."""
        return (
            (IdempotencyKey.owner == self.owner)
            & (IdempotencyKey.scope == self.scope)
            & (IdempotencyKey.key == self.key)
        )


class IdempotencyRepository(Repository):
    """Keys claimed by requests; expired keys are pruned on every claim."""

    def claim(self, slot: KeySlot, digest: str) -> IdempotencyRecord | None:
        """Reserve ``slot`` for a request now starting: None when it is ours, else the row holding it."""
        now = utcnow()
        with self._atomic():
            self.prune(now - KEY_LIFETIME)
            try:
                with self._atomic():
                    IdempotencyKey.insert(
                        owner=slot.owner, scope=slot.scope, key=slot.key, digest=digest, created_at=now
                    ).execute(self._db)
            except peewee.IntegrityError:
                query = IdempotencyKey.select().where(slot.where())
                return IdempotencyRecord(**self._one(query, f"no idempotency key {slot.key!r}"))
            return None

    def finish(self, slot: KeySlot, status: int, response: Any) -> None:
        """Record the answer to the request that claimed ``slot``."""
        IdempotencyKey.update(status=status, response=response).where(slot.where()).execute(self._db)

    def release(self, slot: KeySlot) -> None:
        """Forget ``slot`` (its request failed in a way a retry may fix)."""
        IdempotencyKey.delete().where(slot.where()).execute(self._db)

    def release_unfinished(self) -> int:
        """Forget every key whose request never finished: at a daemon's start, those of requests an
        earlier run was serving when it stopped (a retry runs again). How many were released.
        """
        released: int = IdempotencyKey.delete().where(IdempotencyKey.status.is_null()).execute(self._db)
        return released

    def prune(self, before: datetime) -> int:
        """Delete keys claimed before ``before``; return how many were deleted."""
        deleted: int = IdempotencyKey.delete().where(IdempotencyKey.created_at < before).execute(self._db)
        return deleted
