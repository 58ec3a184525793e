"""The VM as the rest of Volant sees it: states, name rules and a read-only view."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from volant_core.errors import ValidationError
from volant_core.portmap import PublishedPort


class VMStatus(StrEnum):
    """Lifecycle states: ``pending -> starting -> running -> stopping -> stopped``, and ``crashed``."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"


#: States in which a VMM process may exist.
ACTIVE_STATES = frozenset({VMStatus.STARTING, VMStatus.RUNNING, VMStatus.STOPPING})

#: A VM name is a DNS label: it becomes a hostname, a directory and part of socket paths.
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NAME_RULE = (
    "1-63 characters of lower-case letters, digits and '-', starting and ending with a letter or digit"
)


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid VM or deployment name, or None when it is."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        return None
    shown = name if isinstance(name, str) and len(name) <= 70 else f"{str(name)[:60]}..."
    return f"{shown!r} is not a valid name; use {NAME_RULE}"


def check_name(name: str, *, field: str = "name") -> str:
    """Return ``name`` if valid, else raise ValidationError naming ``field``."""
    if problem := name_problem(name):
        raise ValidationError(f"{field}: {problem}", field=field)
    return name


@dataclass(frozen=True)
class VMView:
    """A read-only snapshot of one VM, handed to hooks and serialised by the API.

    ``runtime``, ``hypervisor``, ``network_mode``, ``cpu_cores``, ``memory_mb``
    and ``kernel_cmdline`` are what the VM last booted with; ``config`` is its
    current configuration, version ``config_version``. ``restart_pending`` is
    True while the VMM runs a configuration that a later change made stale.
    ``published_ports`` are the guest ports published on the host while the VM
    is active (from the ``expose`` it booted with), empty otherwise. ``health``
    is ``healthy`` or ``unhealthy`` (with ``health_reason``) while the VM runs,
    None otherwise.
    """

    name: str
    status: VMStatus
    runtime: str
    plugin: str
    hypervisor: str
    network_mode: str
    cpu_cores: int
    memory_mb: int
    mac_address: str
    vsock_cid: int
    runtime_dir: Path
    kernel_cmdline: str = ""
    ip_address: str | None = None
    pid: int | None = None
    accelerator: str | None = None
    status_reason: str | None = None
    console_socket: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    config_version: int = 0
    restart_pending: bool = False
    health: str | None = None
    health_reason: str | None = None
    published_ports: tuple[PublishedPort, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's VM resource): every field but ``config``.

        Built field by field: ``dataclasses.asdict`` deep-copied the configuration only to drop it.
        """
        data = {name: getattr(self, name) for name in _RESOURCE_FIELDS}
        data["status"] = str(self.status)
        data["runtime_dir"] = str(self.runtime_dir)
        data["published_ports"] = [port.to_dict() for port in self.published_ports]
        return data


#: The fields of :class:`VMView` the API's VM resource holds.
_RESOURCE_FIELDS = tuple(f.name for f in fields(VMView) if f.name != "config")
