"""peewee models describing the tables created by the migrations.

The models are deliberately unbound: a process may open several stores (tests
do), so every query names its database explicitly, e.g.
``VM.select().execute(db)``. Never call instance methods such as ``save()``;
the repositories are the only users of these models and return frozen
records (:mod:`volant_core.store.records`) instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peewee


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class TimestampField(peewee.Field):
    """A UTC instant stored as ISO 8601 text with microseconds (text order is time order)."""

    field_type = "TEXT"

    def db_value(self, value: datetime | None) -> str | None:
        """Store ``value`` converted to UTC."""
        return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")

    def python_value(self, value: str | None) -> datetime | None:
        """Read back a timezone-aware UTC datetime."""
        return None if value is None else datetime.fromisoformat(value)


class JSONField(peewee.Field):
    """A JSON document stored as compact text."""

    field_type = "TEXT"

    def db_value(self, value: Any) -> str | None:
        """Serialise ``value`` (keys keep their order)."""
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value: str | None) -> Any:
        """Parse the stored document."""
        return None if value is None else json.loads(value)


class PathField(peewee.Field):
    """A filesystem path stored as text."""

    field_type = "TEXT"

    def db_value(self, value: Path | str | None) -> str | None:
        """Store the path as a string."""
        return None if value is None else str(value)

    def python_value(self, value: str | None) -> Path | None:
        """Read back a :class:`~pathlib.Path`."""
        return None if value is None else Path(value)


class SchemaMigration(peewee.Model):
    """A migration applied to this database."""

    version = peewee.IntegerField(primary_key=True)
    name = peewee.TextField()
    applied_at = TimestampField()

    class Meta:
        table_name = "schema_migrations"


class VMGroup(peewee.Model):
    """A deployment: a named group of identical VMs kept at ``replicas``."""

    id = peewee.AutoField()
    name = peewee.TextField(unique=True)
    config = JSONField(column_name="config_json")
    replicas = peewee.IntegerField()
    created_at = TimestampField()
    updated_at = TimestampField()

    class Meta:
        table_name = "vm_groups"


class VM(peewee.Model):
    """A VM and the host resources it holds."""

    id = peewee.AutoField()
    name = peewee.TextField(unique=True)
    status = peewee.TextField()
    status_reason = peewee.TextField(null=True)
    pid = peewee.IntegerField(null=True)
    runtime = peewee.TextField()
    plugin = peewee.TextField()
    hypervisor = peewee.TextField()
    accelerator = peewee.TextField(null=True)
    ip_address = peewee.TextField(null=True, unique=True)
    mac_address = peewee.TextField(unique=True)
    vsock_cid = peewee.IntegerField(unique=True)
    cpu_cores = peewee.IntegerField()
    memory_mb = peewee.IntegerField()
    kernel_cmdline = peewee.TextField()
    serial_socket = PathField(null=True)
    console_socket = PathField(null=True)
    runtime_dir = PathField()
    group_id = peewee.IntegerField(null=True)
    config_version = peewee.IntegerField(null=True)
    console_log = PathField(null=True)
    created_at = TimestampField()
    updated_at = TimestampField()

    class Meta:
        table_name = "vms"


class VMConfig(peewee.Model):
    """The current configuration of a VM."""

    vm_id = peewee.IntegerField(primary_key=True)
    config = JSONField(column_name="config_json")
    version = peewee.IntegerField()
    updated_at = TimestampField()

    class Meta:
        table_name = "vm_configs"


class VMConfigHistory(peewee.Model):
    """Every configuration a VM ever had, one row per version."""

    id = peewee.AutoField()
    vm_id = peewee.IntegerField()
    version = peewee.IntegerField()
    config = JSONField(column_name="config_json")
    updated_at = TimestampField()

    class Meta:
        table_name = "vm_config_history"


class VMChanges(peewee.Model):
    """One row: how many times a VM row or a VM configuration was inserted, updated or deleted."""

    id = peewee.IntegerField(primary_key=True)
    count = peewee.IntegerField()

    class Meta:
        table_name = "vm_changes"


class Plugin(peewee.Model):
    """A runtime manifest installed through the API."""

    id = peewee.AutoField()
    name = peewee.TextField(unique=True)
    version = peewee.TextField()
    enabled = peewee.BooleanField()
    manifest = JSONField(column_name="manifest_json")
    installed_at = TimestampField()
    updated_at = TimestampField()

    class Meta:
        table_name = "plugins"


class IPAllocation(peewee.Model):
    """An IPv4 address leased to a VM (only leased addresses have a row)."""

    ip_address = peewee.TextField(primary_key=True)
    vm_id = peewee.IntegerField(unique=True)
    leased_at = TimestampField()

    class Meta:
        table_name = "ip_allocations"


class Event(peewee.Model):
    """A persisted orchestrator event, replayed to SSE clients."""

    id = peewee.AutoField()
    type = peewee.TextField()
    vm_name = peewee.TextField(null=True)
    payload = JSONField(column_name="payload_json")
    created_at = TimestampField()

    class Meta:
        table_name = "events"


class IdempotencyKey(peewee.Model):
    """The answer to a request sent with an ``Idempotency-Key``; ``status`` is NULL while it runs.

    A key belongs to its ``owner`` (the client's credential) and ``scope`` (method and path).
    """

    owner = peewee.TextField()
    scope = peewee.TextField()
    key = peewee.TextField()
    digest = peewee.TextField()
    status = peewee.IntegerField(null=True)
    response = JSONField(column_name="response_json", null=True)
    created_at = TimestampField()

    class Meta:
        table_name = "idempotency_keys"
        primary_key = peewee.CompositeKey("owner", "scope", "key")


#: Every model, for schema checks.
MODELS: tuple[type[peewee.Model], ...] = (
    SchemaMigration,
    VMGroup,
    VM,
    VMConfig,
    VMConfigHistory,
    VMChanges,
    Plugin,
    IPAllocation,
    Event,
    IdempotencyKey,
)
