"""``idempotency_keys``: answers to ``POST`` requests sent with an ``Idempotency-Key`` header.

A row without ``status`` is a request still running; a finished one holds its
status and JSON body, replayed to a retry with the same key and body.
"""

from __future__ import annotations

import peewee

STATEMENTS = (
    """
    CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY,
        scope TEXT NOT NULL,
        digest TEXT NOT NULL,
        status INTEGER,
        response_json TEXT,
        created_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX idx_idempotency_keys_created_at ON idempotency_keys (created_at)",
)


def up(db: peewee.Database) -> None:
    """Create the table and its expiry index."""
    for statement in STATEMENTS:
        db.execute_sql(statement)
