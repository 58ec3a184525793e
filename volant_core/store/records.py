"""Rows as the repositories return them: frozen dataclasses, detached from the database.

Records are snapshots. They are safe to hand to other threads and never
change; JSON documents (``config``, ``manifest``, ``payload``) are plain
dicts the caller must treat as read-only. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class VMRecord:
    """A VM row. ``ip_address`` is None for a VM without an address (never "").

    ``config_version`` is the configuration version the VMM was last booted
    with (None before the first boot); ``console_log`` the file holding the
    guest's console output (kept after the VM stops).
    """

    id: int
    name: str
    status: str
    status_reason: str | None
    pid: int | None
    runtime: str
    plugin: str
    hypervisor: str
    accelerator: str | None
    ip_address: str | None
    mac_address: str
    vsock_cid: int
    cpu_cores: int
    memory_mb: int
    kernel_cmdline: str
    serial_socket: Path | None
    console_socket: Path | None
    runtime_dir: Path
    group_id: int | None
    config_version: int | None
    console_log: Path | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ConfigRecord:
    """One version of a VM's configuration (the current one or one from its history)."""

    vm_id: int
    version: int
    config: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class RuntimeRecord:
    """An installed runtime manifest and whether VMs may use it."""

    id: int
    name: str
    version: str
    enabled: bool
    manifest: dict[str, Any]
    installed_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LeaseRecord:
    """An IPv4 address leased to a VM."""

    ip_address: str
    vm_id: int
    leased_at: datetime


@dataclass(frozen=True)
class GroupRecord:
    """A deployment: a VM configuration and how many replicas of it to run."""

    id: int
    name: str
    config: dict[str, Any]
    replicas: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class EventRecord:
    """A stored event; ``id`` grows monotonically and is never reused."""

    id: int
    type: str
    vm_name: str | None
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class IdempotencyRecord:
    """A request made with an ``Idempotency-Key``: ``status`` and ``response`` are None while it runs."""

    owner: str
    """Digest of the API key the request carried ('' without one)."""
    scope: str
    """``<METHOD> <path>`` of the request."""
    key: str
    digest: str
    """SHA-256 of the request body."""
    status: int | None
    response: Any
    created_at: datetime
