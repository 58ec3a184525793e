"""The ``idempotency_keys`` table: which keyed request ran, and what it answered."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import peewee

from volant_core.store.models import IdempotencyKey, utcnow
from volant_core.store.records import IdempotencyRecord
from volant_core.store.repository import Repository

#: How long a key is remembered.
KEY_LIFETIME = timedelta(hours=24)


class IdempotencyRepository(Repository):
    """Keys claimed by requests; expired keys are pruned on every claim."""

    def claim(self, key: str, scope: str, digest: str) -> IdempotencyRecord | None:
        """Reserve ``key`` for a request now starting: None when it is ours, else the row holding it."""
        now = utcnow()
        with self._atomic():
            self.prune(now - KEY_LIFETIME)
            try:
                with self._atomic():
                    IdempotencyKey.insert(key=key, scope=scope, digest=digest, created_at=now).execute(
                        self._db
                    )
            except peewee.IntegrityError:
                query = IdempotencyKey.select().where(IdempotencyKey.key == key)
                return IdempotencyRecord(**self._one(query, f"no idempotency key {key!r}"))
            return None

    def finish(self, key: str, status: int, response: Any) -> None:
        """Record the answer to the request that claimed ``key``."""
        update = IdempotencyKey.update(status=status, response=response)
        update.where(IdempotencyKey.key == key).execute(self._db)

    def release(self, key: str) -> None:
        """Forget ``key`` (its request failed in a way a retry may fix)."""
        IdempotencyKey.delete().where(IdempotencyKey.key == key).execute(self._db)

    def prune(self, before: datetime) -> int:
        """Delete keys claimed before ``before``; return how many were deleted."""
        deleted: int = IdempotencyKey.delete().where(IdempotencyKey.created_at < before).execute(self._db)
        return deleted
