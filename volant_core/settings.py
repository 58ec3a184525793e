"""Daemon settings: ``VOLANT_*`` environment variables with safe defaults.

The names are those of the Go original where it had one, so its users can
switch; ``volantd`` options override them. State lives under ``~/.volant``
for a normal user and ``/var/lib/volant`` for root, unless
``VOLANT_STATE_DIR`` says otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from volant_core.agent_client import (
    DEFAULT_LANE_WAIT_S,
    DEFAULT_MAX_ANSWER,
    LANE_WAIT_SETTING,
    MAX_ANSWER_SETTING,
)
from volant_core.errors import ValidationError
from volant_core.keyfile import read_key_file

#: Directory under the state directory that is an artifact directory by default (made by volantd).
IMAGES_DIR = "images"

#: Defaults of the resource limits (docs/adr/0027-resource-admission.md): vCPUs per host CPU and
#: guest memory per host memory that VMs holding resources may have in all, VMs kept, replicas of
#: one deployment, bytes of a VM's metadata, configuration versions kept per VM.
DEFAULT_CPU_OVERCOMMIT = 4.0
DEFAULT_MEMORY_OVERCOMMIT = 1.0
DEFAULT_MAX_VMS = 256
DEFAULT_MAX_REPLICAS = 64
DEFAULT_MAX_METADATA_BYTES = 64 * 1024
DEFAULT_CONFIG_HISTORY = 20
#: Most replicas member names allow (``<deployment>-<n>`` with at most four digits).
MAX_REPLICAS_BY_NAME = 9999
#: The uids and gids of VMMs (``VOLANT_VMM_ID_RANGE``, docs/adr/0031-vmm-confinement.md): far above
#: the ids of system users and people (and of the usual subordinate-id ranges), below ``(uid_t)-1``.
DEFAULT_VMM_ID_RANGE = "2000000000-2099999999"
#: The bounds a VMM id range must lie within: above the 16-bit ids of older systems' users, and
#: below 4294967295 (``(uid_t)-1``, "no change" to the kernel).
MIN_VMM_ID = 65_536
MAX_VMM_ID = 4_294_967_294
#: One level of a cgroup path as ``VOLANT_VMM_CGROUP`` takes it (relative to each hierarchy's root).
_CGROUP_LEVEL = re.compile(r"[A-Za-z0-9_.-]+")

#: An IPv4 or IPv6 network, as in ``VOLANT_API_ALLOW_CIDR``.
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    artifact_dirs: tuple[Path, ...]
    hypervisor: str = "qemu"
    network_mode: str = "none"
    kernel: Path | None = None
    initramfs: Path | None = None
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.127.0/24")
    host_ip: ipaddress.IPv4Address = ipaddress.IPv4Address("192.168.127.1")
    api_key: str | None = None
    api_key_file: Path | None = None
    api_allow_cidr: tuple[IPNetwork, ...] = ()
    trusted_proxies: tuple[IPNetwork, ...] = ()
    metrics_addresses: tuple[IPNetwork, ...] = ()
    """Clients that may ``GET /metrics`` without the API key, even outside ``api_allow_cidr``."""
    cors_origins: tuple[str, ...] = ()
    api_hosts: tuple[str, ...] = ()
    """Names clients may reach the API by (``Host``), besides ``localhost`` and IP addresses."""
    boot_timeout: float = Field(default=120.0, gt=0)
    stop_timeout: float = Field(default=30.0, gt=0)
    health_interval: float = Field(default=5.0, gt=0)
    health_failures: int = Field(default=3, ge=1)
    reconcile_interval: float = Field(default=5.0, gt=0)
    events_keep: int = Field(default=10_000, ge=100)
    sse_heartbeat: float = Field(default=15.0, gt=0)
    sse_queue: int = Field(default=256, ge=1)
    api_max_connections: int = Field(default=4096, ge=16)
    api_threads: int = Field(default=64, ge=2)
    api_header_timeout: float = Field(default=10.0, gt=0)
    api_body_timeout: float = Field(default=30.0, gt=0)
    api_keepalive_timeout: float = Field(default=5.0, gt=0)
    agent_max_answer: int = Field(default=DEFAULT_MAX_ANSWER, ge=64 * 1024)
    """Most bytes of an agent answer read whole (actions, OpenAPI, health); the proxy's streams have none."""
    agent_lane_wait: float = Field(default=DEFAULT_LANE_WAIT_S, gt=0)
    """Seconds a request to a guest's agent waits for a free lane before a 503 with ``Retry-After``."""
    access_log: bool = True
    cpu_overcommit: float = Field(default=DEFAULT_CPU_OVERCOMMIT, gt=0, le=1000)
    """How many vCPUs VMs holding resources may have in all, per host CPU."""
    memory_overcommit: float = Field(default=DEFAULT_MEMORY_OVERCOMMIT, gt=0, le=1000)
    """How much guest memory VMs holding resources may have in all, per MiB of host memory."""
    max_vms: int = Field(default=DEFAULT_MAX_VMS, ge=1)
    """Most VMs volantd keeps, whatever their state."""
    max_replicas: int = Field(default=DEFAULT_MAX_REPLICAS, ge=1, le=MAX_REPLICAS_BY_NAME)
    """Most replicas of one deployment."""
    max_metadata_bytes: int = Field(default=DEFAULT_MAX_METADATA_BYTES, ge=2)
    """Most bytes of a VM's ``metadata``, as compact JSON."""
    config_history: int = Field(default=DEFAULT_CONFIG_HISTORY, ge=1)
    """Configuration versions kept per VM (besides the one it last booted with)."""
    artifact_deadline: float = Field(default=3600.0, gt=0)
    """Longest time (seconds) one artifact download may take in total, however steadily it trickles."""
    vmm_user: str = Field(default="volant-vmm", min_length=1)
    """The unprivileged user whose groups VMMs run with, each with a uid and gid of its VM's own from
    ``vmm_id_range`` (``root``: VMMs run as root, unconfined, logged as a warning)."""
    vmm_id_range: str = DEFAULT_VMM_ID_RANGE
    """The uids and gids VMMs get (``FIRST-LAST``), one of their own per VM: the first plus the VM's
    vsock CID."""
    vmm_cgroup: str = "volant"
    """The cgroup (relative to each hierarchy's root) under which every VMM gets a group of its own
    with its VM's CPU and memory limits; ``off``: no limits."""
    vmm_memory_overhead_mb: int = Field(default=512, ge=0)
    """Memory a VMM may use beyond its guest's RAM (its own code, device buffers, TCG's code cache)."""
    plugin_env: dict[str, str] = {}
    """``VOLANT_*`` variables that are not volantd's own (plugins' settings), with volantd's
    options for plugin settings over the environment's values."""

    @field_validator("api_listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:7777")
        return value

    @field_validator("api_key")
    @classmethod
    def _key_fits_a_header(cls, value: str | None) -> str | None:
        if value is not None and not (value.isascii() and value.isprintable() and " " not in value):
            raise ValueError("must be printable ASCII without spaces (it travels in an HTTP header)")
        return value

    @field_validator("api_allow_cidr", "trusted_proxies", "metrics_addresses", mode="before")
    @classmethod
    def _networks(cls, value: object) -> tuple[IPNetwork, ...]:
        networks = []
        for item in _comma_list(value):
            try:
                networks.append(ipaddress.ip_network(str(item)))
            except ValueError as err:
                raise ValueError(f"{item!s} is not a CIDR such as 10.0.0.0/8 or fd00::/8 ({err})") from None
        return tuple(networks)

    @field_validator("artifact_dirs", mode="before")
    @classmethod
    def _absolute_dirs(cls, value: object) -> tuple[Path, ...]:
        directories = tuple(Path(str(item)).expanduser() for item in _comma_list(value))
        for directory in directories:
            if not directory.is_absolute():
                raise ValueError(
                    f"{directory} is not an absolute path; list absolute directories, comma-separated"
                )
        return directories

    @field_validator("vmm_cgroup")
    @classmethod
    def _cgroup_path(cls, value: str) -> str:
        levels = value.strip("/").split("/")
        if value != "off" and not all(_CGROUP_LEVEL.fullmatch(x) and x not in {".", ".."} for x in levels):
            raise ValueError("must be off, or a cgroup path such as volant or machines/volant (no . or ..)")
        return value

    @field_validator("vmm_id_range")
    @classmethod
    def _id_range(cls, value: str) -> str:
        first, last = parse_id_range(value)
        return f"{first}-{last}"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> tuple[str, ...]:
        origins = tuple(str(item).lower().rstrip("/") for item in _comma_list(value))
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin} is not an origin such as https://console.example.com, or *")
        return origins

    @field_validator("api_hosts", mode="before")
    @classmethod
    def _host_names(cls, value: object) -> tuple[str, ...]:
        names = tuple(str(item).lower().rstrip(".") for item in _comma_list(value))
        for name in names:
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{name} is not a host name such as volant.example.com (no port, no scheme)")
        return names

    @property
    def vmm_ids(self) -> tuple[int, int]:
        """``vmm_id_range``'s first and last id."""
        return parse_id_range(self.vmm_id_range)

    @property
    def download_dir(self) -> Path:
        """Where boot sources store verified artifacts (volantd reads them like ``artifact_dirs``)."""
        return self.cache_dir / "artifacts"

    @property
    def listen_address(self) -> tuple[str, int]:
        """``api_listen`` split into host and port."""
        host, _, port = self.api_listen.rpartition(":")
        return host.strip("[]"), int(port)


#: A DNS name as ``VOLANT_API_HOSTS`` lists them: dot-separated labels, no port.
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")

#: A browser origin: scheme, host and optional port, no path.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s]+")


def parse_id_range(value: str) -> tuple[int, int]:
    """The first and last id of a ``FIRST-LAST`` range of uids and gids (``VOLANT_VMM_ID_RANGE``);
    ValueError with the expected form unless :data:`MIN_VMM_ID` <= FIRST <= LAST <= :data:`MAX_VMM_ID`.
    """
    first, sep, last = value.partition("-")
    if sep and first.strip().isdigit() and last.strip().isdigit():
        bounds = int(first), int(last)
        if MIN_VMM_ID <= bounds[0] <= bounds[1] <= MAX_VMM_ID:
            return bounds
    raise ValueError(
        f"must be FIRST-LAST with {MIN_VMM_ID} <= FIRST <= LAST <= {MAX_VMM_ID} (above the ids of the "
        f"host's system users and people), e.g. {DEFAULT_VMM_ID_RANGE}"
    )


def _comma_list(value: object) -> list[object]:
    """The items of a comma-separated string (or of a sequence); ValueError when there are none."""
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",") if part.strip()]
    else:
        items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError("empty list; leave the variable unset instead")
    return items


#: Environment variable -> settings field. Several Go names map to one field.
ENVIRONMENT = {
    "VOLANT_STATE_DIR": "state_dir",
    "VOLANT_API_LISTEN": "api_listen",
    "VOLANT_DB_PATH": "db_path",
    "VOLANT_RUNTIME_DIR": "runtime_dir",
    "VOLANT_LOG_DIR": "log_dir",
    "VOLANT_CACHE_DIR": "cache_dir",
    "VOLANT_ARTIFACT_DIRS": "artifact_dirs",
    "VOLANT_HYPERVISOR": "hypervisor",
    "VOLANT_NETWORK_MODE": "network_mode",
    "VOLANT_KERNEL": "kernel",
    "VOLANT_KERNEL_VMLINUX": "kernel",
    "VOLANT_INITRAMFS": "initramfs",
    "VOLANT_SUBNET": "subnet",
    "VOLANT_HOST_IP": "host_ip",
    "VOLANT_API_KEY": "api_key",
    "VOLANT_API_KEY_FILE": "api_key_file",
    "VOLANT_API_ALLOW_CIDR": "api_allow_cidr",
    "VOLANT_TRUSTED_PROXIES": "trusted_proxies",
    "VOLANT_METRICS_ADDRESSES": "metrics_addresses",
    "VOLANT_CORS_ORIGINS": "cors_origins",
    "VOLANT_API_HOSTS": "api_hosts",
    "VOLANT_BOOT_TIMEOUT": "boot_timeout",
    "VOLANT_STOP_TIMEOUT": "stop_timeout",
    "VOLANT_HEALTH_INTERVAL": "health_interval",
    "VOLANT_HEALTH_FAILURES": "health_failures",
    "VOLANT_RECONCILE_INTERVAL": "reconcile_interval",
    "VOLANT_EVENTS_KEEP": "events_keep",
    "VOLANT_SSE_HEARTBEAT": "sse_heartbeat",
    "VOLANT_SSE_QUEUE": "sse_queue",
    "VOLANT_API_MAX_CONNECTIONS": "api_max_connections",
    "VOLANT_API_THREADS": "api_threads",
    "VOLANT_API_HEADER_TIMEOUT": "api_header_timeout",
    "VOLANT_API_BODY_TIMEOUT": "api_body_timeout",
    "VOLANT_API_KEEPALIVE_TIMEOUT": "api_keepalive_timeout",
    MAX_ANSWER_SETTING: "agent_max_answer",
    LANE_WAIT_SETTING: "agent_lane_wait",
    "VOLANT_ACCESS_LOG": "access_log",
    "VOLANT_CPU_OVERCOMMIT": "cpu_overcommit",
    "VOLANT_MEMORY_OVERCOMMIT": "memory_overcommit",
    "VOLANT_MAX_VMS": "max_vms",
    "VOLANT_MAX_REPLICAS": "max_replicas",
    "VOLANT_MAX_METADATA_BYTES": "max_metadata_bytes",
    "VOLANT_CONFIG_HISTORY": "config_history",
    "VOLANT_ARTIFACT_DEADLINE": "artifact_deadline",
    "VOLANT_VMM_USER": "vmm_user",
    "VOLANT_VMM_ID_RANGE": "vmm_id_range",
    "VOLANT_VMM_CGROUP": "vmm_cgroup",
    "VOLANT_VMM_MEMORY_OVERHEAD_MB": "vmm_memory_overhead_mb",
}


def load_settings(
    environ: Mapping[str, str] | None = None,
    plugin_overrides: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Settings from ``environ`` (default: the process environment), then ``overrides``.

    Paths left unset are derived from the state directory; host files named through the API
    (``artifact_dirs``) are read from the cache and ``<state_dir>/images`` unless
    ``VOLANT_ARTIFACT_DIRS`` says otherwise (never the whole state directory: it holds
    ``state.db`` and every VM's writable disk copies). Invalid values raise
    :class:`~volant_core.errors.ValidationError` naming the variable. ``VOLANT_*`` variables
    that are not volantd's own are kept, with ``plugin_overrides`` (by variable) over them, for the
    plugins' settings.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {
        "plugin_env": {
            **{k: v for k, v in env.items() if k.startswith("VOLANT_") and k not in ENVIRONMENT},
            **(plugin_overrides or {}),
        }
    }
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
    values.setdefault("artifact_dirs", (values["cache_dir"], state / IMAGES_DIR))
    if values.get("api_key_file"):
        source = sources.get("api_key_file", "--api-key-file")
        if values.get("api_key"):
            other = sources.get("api_key", "--api-key")
            raise ValidationError(f"{source}: {other} is set too; use one of them", field="api_key_file")
        try:
            values["api_key"] = read_key_file(Path(str(values["api_key_file"])).expanduser())
        except ValueError as err:
            raise ValidationError(f"{source}: {err}", field="api_key_file") from None
        sources["api_key"] = source
    try:
        settings = Settings.model_validate(values)
    except PydanticValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        source = sources.get(field, f"--{field.replace('_', '-')}")
        raise ValidationError(f"{source}: {first['msg']}", field=field) from None
    if settings.api_key is None and not is_loopback(settings.listen_address[0]):
        source = sources.get("api_listen", "--listen")
        raise ValidationError(
            f"{source}: {settings.api_listen} is reachable from other machines, and no API key is set; "
            "put a key in a file only volantd's user can read (e.g. `head -c 32 /dev/urandom | base64 "
            "> /etc/volant/api-key; chmod 600 /etc/volant/api-key`) and give it as VOLANT_API_KEY_FILE "
            "(--api-key-file), or listen on 127.0.0.1",
            field="api_listen",
        )
    return settings


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen or ``Host`` name, IPv6 without brackets) is this machine only:
    ``localhost`` or a loopback address.
    """
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def variable_of(field: str) -> str:
    """The ``VOLANT_*`` environment variable that sets settings field ``field`` (the first, when
    several do); for messages that tell which setting to change.
    """
    return next(var for var, name in ENVIRONMENT.items() if name == field)
