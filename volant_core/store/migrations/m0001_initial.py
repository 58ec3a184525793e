"""The initial schema: VMs, their configuration history, IP leases, plugins, deployments, events.

Timestamps are TEXT in UTC ISO 8601 with microseconds, so text order is time order.
"""

from __future__ import annotations

import peewee

STATEMENTS = (
    """
    CREATE TABLE vm_groups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE CHECK (name <> ''),
        config_json TEXT NOT NULL,
        replicas INTEGER NOT NULL CHECK (replicas >= 0),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE vms (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE CHECK (name <> ''),
        status TEXT NOT NULL CHECK (status <> ''),
        status_reason TEXT,
        pid INTEGER,
        runtime TEXT NOT NULL,
        plugin TEXT NOT NULL,
        hypervisor TEXT NOT NULL,
        accelerator TEXT,
        ip_address TEXT UNIQUE CHECK (ip_address <> ''),
        mac_address TEXT NOT NULL UNIQUE,
        vsock_cid INTEGER NOT NULL UNIQUE CHECK (vsock_cid >= 3),
        cpu_cores INTEGER NOT NULL CHECK (cpu_cores > 0),
        memory_mb INTEGER NOT NULL CHECK (memory_mb > 0),
        kernel_cmdline TEXT NOT NULL DEFAULT '',
        serial_socket TEXT,
        console_socket TEXT,
        runtime_dir TEXT NOT NULL,
        group_id INTEGER REFERENCES vm_groups (id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX idx_vms_status ON vms (status)",
    "CREATE INDEX idx_vms_group_id ON vms (group_id)",
    """
    CREATE TABLE vm_configs (
        vm_id INTEGER PRIMARY KEY REFERENCES vms (id) ON DELETE CASCADE,
        config_json TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        updated_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE vm_config_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vm_id INTEGER NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
        version INTEGER NOT NULL CHECK (version >= 1),
        config_json TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX idx_vm_config_history_vm ON vm_config_history (vm_id, version DESC)",
    """
    CREATE TABLE plugins (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE CHECK (name <> ''),
        version TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        manifest_json TEXT NOT NULL,
        installed_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE ip_allocations (
        ip_address TEXT PRIMARY KEY,
        vm_id INTEGER NOT NULL UNIQUE REFERENCES vms (id) ON DELETE CASCADE,
        leased_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        vm_name TEXT,
        payload_json TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
)


def up(db: peewee.Database) -> None:
    """Create every table and index of the first schema."""
    for statement in STATEMENTS:
        db.execute_sql(statement)
