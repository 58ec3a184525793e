"""Response bodies of the API as pydantic models: the OpenAPI schemas of what volantd sends.

Resources build their answers as dicts (``VMView.to_dict`` ...); the responders
declare these models with :func:`volant_core.api.openapi.operations.operation`,
which validates every successful answer against them. So a field added to a
view without its model is a 500 in the tests, never a silent drift from the
published document. Unknown keys are refused for the same reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from volant_core.orchestrator.vmconfig import VMConfig
from volant_core.vm import VMStatus

__all__ = [
    "ConfigVersion",
    "DeploymentMember",
    "DeploymentResource",
    "Error",
    "ErrorDetail",
    "ErrorInfo",
    "HealthStatus",
    "ImageCacheEntry",
    "ImageCacheListing",
    "ImageCachePruned",
    "PluginInfoResource",
    "PublishedPortResource",
    "RuntimeCount",
    "RuntimeList",
    "RuntimeSummary",
    "SystemInfo",
    "SystemPluginsResource",
    "SystemStatus",
    "SystemSummary",
    "VMResource",
]


class _Response(BaseModel):
    """Shared settings: unknown keys are a contract drift, not something to ignore."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ErrorDetail(_Response):
    """One problem with the request."""

    field: str
    """Dotted path of the field at fault (``body`` for the whole document)."""
    message: str
    """What is wrong and how to fix it."""


class ErrorInfo(_Response):
    """What went wrong."""

    code: str
    """Stable, machine-readable code (``invalid``, ``not_found``, ``conflict``, ``limit_exceeded``,
    ``unauthorized`` ...)."""
    message: str
    """Explanation for people."""
    details: list[ErrorDetail] | Any = None
    """Per-field problems (``[{field, message}]``) or other structured data; null when there is none."""


class Error(_Response):
    """Every error response of the API."""

    error: ErrorInfo


class HealthStatus(_Response):
    """``GET /healthz``."""

    status: Literal["ok"]


class PluginInfoResource(_Response):
    """A code plugin found through the ``volant.plugins`` entry points, working or not."""

    name: str
    distribution: str
    version: str
    module: str
    status: Literal["loaded", "degraded", "failed", "disabled"]
    """``degraded``: loaded, but a notification hook or a release raised (see ``errors``)."""
    error: str | None
    """Why the plugin failed (or its latest hook error); null when it works."""
    hooks: list[str]
    """Hooks the plugin implements."""
    errors: list[str]
    """The latest errors its hooks raised while it stayed loaded, oldest first."""


class SystemPluginsResource(_Response):
    """``GET /api/v1/system/plugins``."""

    version: str
    """volant-core version."""
    plugins: list[PluginInfoResource]


class SystemStatus(_Response):
    """``GET /api/v1/system/status``."""

    status: Literal["ok"]
    vm_count: int
    """VMs known to the daemon, in any state."""
    uptime_s: float
    """Seconds since the API started."""
    version: str
    """volant-core version."""


class SystemInfo(_Response):
    """``GET /api/v1/system/info``: how this daemon is set up."""

    version: str
    api_listen: str
    """Address the API was configured to listen on."""
    hypervisors: list[str]
    """Registered hypervisor backends."""
    network_modes: list[str]
    """Registered network modes."""
    default_hypervisor: str
    default_network_mode: str
    state_dir: str
    extensions: dict[str, list[dict[str, Any]]]
    """What plugins registered, by kind (``hypervisors`` with their ``capabilities``,
    ``network_modes``, ``device_drivers``, ``seed_builders``, ``boot_sources``), each naming its plugin."""


class RuntimeCount(_Response):
    """A runtime manifest in the system summary."""

    name: str
    version: str
    enabled: bool


class SystemSummary(_Response):
    """``GET /api/v1/system/summary``: VM counts by status and runtime (lower-case keys), manifests."""

    total_vms: int
    by_status: dict[str, int]
    by_runtime: dict[str, int]
    total_plugins: int
    """Runtime manifests in the catalog."""
    enabled_plugins: int
    plugins: list[RuntimeCount]


class PublishedPortResource(_Response):
    """A guest port published on the host: ``<host address>:<host_port>`` reaches the guest's port."""

    protocol: Literal["tcp", "udp"]
    host_port: int = Field(ge=1, le=65535)
    guest_ip: str
    guest_port: int = Field(ge=1, le=65535)
    name: str | None
    """Name of the ``expose`` entry, if it has one."""


class VMResource(_Response):
    """A VM (``VMView.to_dict``): what it last booted with, its state and its configuration version."""

    name: str
    status: VMStatus
    runtime: str
    plugin: str
    """Runtime manifest the VM was created from."""
    hypervisor: str
    network_mode: str
    cpu_cores: int
    memory_mb: int
    mac_address: str
    vsock_cid: int
    runtime_dir: str
    """Host directory of the VM's sockets, logs and boot media."""
    kernel_cmdline: str
    ip_address: str | None
    pid: int | None
    """Process id of the VMM; null when none runs."""
    accelerator: str | None
    status_reason: str | None
    """Why the VM is in its status (e.g. what crashed it)."""
    console_socket: str | None
    created_at: datetime | None
    updated_at: datetime | None
    config_version: int
    """Current configuration version (see ``/config``)."""
    restart_pending: bool
    """True while the VMM runs a configuration a later change made stale."""
    health: Literal["healthy", "unhealthy"] | None
    """While the VM runs: whether its workload passes its health check; null in any other state."""
    health_reason: str | None
    """Why the workload is unhealthy (what kestrel said of its health check)."""
    published_ports: list[PublishedPortResource]
    """Guest ports published on the host while the VM is active (from the ``expose`` it booted with)."""


class ConfigVersion(_Response):
    """One version of a VM's configuration."""

    version: int = Field(ge=1)
    updated_at: datetime
    config: VMConfig


class RuntimeSummary(_Response):
    """A runtime manifest in the catalog."""

    name: str
    version: str
    runtime: str
    enabled: bool
    source: str
    """``installed`` (through the API) or ``package:<distribution>`` (shipped by a plugin)."""


class RuntimeList(_Response):
    """``GET /api/v1/plugins``."""

    plugins: list[RuntimeSummary]


class DeploymentMember(_Response):
    """A member VM of a deployment."""

    name: str
    status: VMStatus
    status_reason: str | None
    """Why a ``crashed`` or ``stopped`` member is so (a crashed member is kept until replaced)."""


class MemberFailureResource(_Response):
    """A member that failed, and when the controller tries again (exponential backoff)."""

    name: str
    kind: Literal["create_failed", "crashed"]
    """``create_failed``: creating or booting it failed and no VM is left; ``crashed``: it crashed
    and its restart policy gave up (the VM is kept, with its reason and console log)."""
    attempts: int
    """Failures in a row, replacements included; reset once a member runs."""
    last_error: str
    failed_at: datetime
    next_retry_at: datetime | None
    """When the next attempt may start; null once a replacement was booted."""
    replaced_by: str | None
    """The member booted in place of a crashed one."""


class SkippedMemberName(_Response):
    """A member name the controller does not use because a VM outside the deployment has it."""

    name: str
    reason: str


class DeploymentStatus(_Response):
    """What the reconcile loop is doing for a deployment."""

    booting: list[str]
    """Members being created and booted now."""
    failing: list[MemberFailureResource]
    skipped: list[SkippedMemberName]


class DeploymentResource(_Response):
    """A deployment: its member configuration, the wanted and the running replica counts."""

    name: str
    replicas: int
    desired_replicas: int
    """``replicas`` again, under the Go original's name."""
    ready_replicas: int
    """Members in ``running``."""
    config: dict[str, Any]
    """Member VM configuration (the keys of ``PATCH /vms/{name}/config``, with ``plugin``)."""
    members: list[DeploymentMember]
    status: DeploymentStatus
    created_at: datetime
    updated_at: datetime


class ImageCacheEntry(_Response):
    """A file of the download cache."""

    kind: Literal["artifact", "partial"]
    """``artifact``: verified and ready; ``partial``: a download cut off, resumed by the next fetch."""
    digest: str
    """``sha256:<hex>`` or ``sha512:<hex>``: what the artifact is (or must be, once complete)."""
    path: str
    size: int
    """Bytes (held so far, for a partial)."""
    modified: float
    """Last modification, seconds since the epoch."""
    url: str | None
    """Where a partial download comes from."""
    used_by: list[str]
    """VMs whose configurations name it (pruning keeps it while there is one)."""


class ImageCacheListing(_Response):
    """``GET /api/v1/images/cache``."""

    entries: list[ImageCacheEntry]
    total_bytes: int


class ImageCachePruned(_Response):
    """``POST /api/v1/images/cache/prune``."""

    removed: list[ImageCacheEntry]
    freed_bytes: int
