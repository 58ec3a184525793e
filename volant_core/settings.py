"""Daemon settings: ``VOLANT_*`` environment variables with safe defaults.

The names are those of the Go original where it had one, so its users can
switch; ``volantd`` options override them. State lives under ``~/.volant``
for a normal user and ``/var/lib/volant`` for root, unless
``VOLANT_STATE_DIR`` says otherwise.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from volant_core.errors import ValidationError


def default_state_dir() -> Path:
    """``/var/lib/volant`` for root, ``~/.volant`` for everyone else."""
    if os.geteuid() == 0:
        return Path("/var/lib/volant")
    return Path.home() / ".volant"


class Settings(BaseModel):
    """Everything volantd is configured with."""

    model_config = ConfigDict(frozen=True)

    state_dir: Path
    api_listen: str = "127.0.0.1:7777"
    db_path: Path
    runtime_dir: Path
    log_dir: Path
    cache_dir: Path
    hypervisor: str = "qemu"
    network_mode: str = "none"
    kernel: Path | None = None
    initramfs: Path | None = None
    bridge: str = "vbr0"
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.127.0/24")
    host_ip: ipaddress.IPv4Address = ipaddress.IPv4Address("192.168.127.1")
    api_key: str | None = None
    boot_timeout: float = Field(default=120.0, gt=0)
    stop_timeout: float = Field(default=30.0, gt=0)
    health_interval: float = Field(default=5.0, gt=0)
    health_failures: int = Field(default=3, ge=1)
    reconcile_interval: float = Field(default=5.0, gt=0)
    events_keep: int = Field(default=10_000, ge=100)

    @field_validator("api_listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:7777")
        return value

    @property
    def listen_address(self) -> tuple[str, int]:
        """``api_listen`` split into host and port."""
        host, _, port = self.api_listen.rpartition(":")
        return host.strip("[]"), int(port)


#: Environment variable -> settings field. Several Go names map to one field.
ENVIRONMENT = {
    "VOLANT_STATE_DIR": "state_dir",
    "VOLANT_API_LISTEN": "api_listen",
    "VOLANT_DB_PATH": "db_path",
    "VOLANT_RUNTIME_DIR": "runtime_dir",
    "VOLANT_LOG_DIR": "log_dir",
    "VOLANT_CACHE_DIR": "cache_dir",
    "VOLANT_HYPERVISOR": "hypervisor",
    "VOLANT_NETWORK_MODE": "network_mode",
    "VOLANT_KERNEL": "kernel",
    "VOLANT_KERNEL_VMLINUX": "kernel",
    "VOLANT_INITRAMFS": "initramfs",
    "VOLANT_BRIDGE": "bridge",
    "VOLANT_SUBNET": "subnet",
    "VOLANT_HOST_IP": "host_ip",
    "VOLANT_API_KEY": "api_key",
    "VOLANT_BOOT_TIMEOUT": "boot_timeout",
    "VOLANT_STOP_TIMEOUT": "stop_timeout",
    "VOLANT_HEALTH_INTERVAL": "health_interval",
    "VOLANT_HEALTH_FAILURES": "health_failures",
    "VOLANT_RECONCILE_INTERVAL": "reconcile_interval",
    "VOLANT_EVENTS_KEEP": "events_keep",
}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``environ`` (default: the process environment), then ``overrides``.

    Paths left unset are derived from the state directory. Invalid values raise
    :class:`~volant_core.errors.ValidationError` naming the variable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for var, field in ENVIRONMENT.items():
        if env.get(var) and field not in values:
            values[field] = env[var]
            sources[field] = var
    values.update({k: v for k, v in overrides.items() if v is not None})
    state = Path(str(values.get("state_dir") or default_state_dir())).expanduser()
    values["state_dir"] = state
    defaults = {
        "db_path": state / "state.db",
        "runtime_dir": state / "run",
        "log_dir": state / "logs",
        "cache_dir": state / "cache",
    }
    for field, default in defaults.items():
        values[field] = Path(str(values.get(field) or default)).expanduser()
    try:
        return Settings.model_validate(values)
    except PydanticValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        source = sources.get(field, f"--{field.replace('_', '-')}")
        raise ValidationError(f"{source}: {first['msg']}", field=field) from None
