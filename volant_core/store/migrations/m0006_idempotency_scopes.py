"""``idempotency_keys`` scoped: a key belongs to one client credential and one route and method.

The primary key becomes (``owner``, ``scope``, ``key``): ``owner`` is a digest of the API key the
request carried ('' without one), ``scope`` its ``<METHOD> <path>``. Keys stored before keep
their scope and get the owner ''.
"""

from __future__ import annotations

import peewee

STATEMENTS = (
    """
    CREATE TABLE idempotency_keys_scoped (
        owner TEXT NOT NULL,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        digest TEXT NOT NULL,
        status INTEGER,
        response_json TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (owner, scope, key)
    )
    """,
    """
    INSERT INTO idempotency_keys_scoped (owner, scope, key, digest, status, response_json, created_at)
    SELECT '', scope, key, digest, status, response_json, created_at FROM idempotency_keys
    """,
    "DROP TABLE idempotency_keys",
    "ALTER TABLE idempotency_keys_scoped RENAME TO idempotency_keys",
    "CREATE INDEX idx_idempotency_keys_created_at ON idempotency_keys (created_at)",
)


def up(db: peewee.Database) -> None:
    """Move the keys into the scoped table."""
    for statement in STATEMENTS:
        db.execute_sql(statement)
