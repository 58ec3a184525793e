"""A VM's stored configuration and the PATCH rules that change it.

:class:`VMConfig` is the document kept, one version per change, in
``vm_configs`` and ``vm_config_history``. Its JSON is that of the Go
``vmconfig.Config`` (``plugin``, ``runtime``, ``kernel_cmdline``,
``kernel_override``, ``resources``, ``api``, ``manifest``, ``devices``,
``metadata``, ``expose``, ``cloud_init``, ``network``, ``initramfs``,
``rootfs``) plus ``hypervisor``, ``persistent_root``, ``restart_policy`` and
``on_unhealthy``.

:func:`apply_patch` merges a :class:`ConfigPatch` the Go way:

* ``resources``, ``api`` and ``restart_policy`` field by field: a patch
  sets only the sub-fields it names;
* every other key as a whole: the patch's value replaces the current one
  (``manifest``, ``devices``, ``cloud_init``, ``network``, ``initramfs``,
  ``rootfs``, ``persistent_root``, ``metadata`` and ``expose`` included; ``[]`` clears ``expose``);
* ``null`` puts a key (or sub-field) back to its default: what a new VM of
  the same manifest would get (the manifest's ``runtime``, ``resources`` and
  ``expose``, no overrides, empty ``metadata``, the default policy).
  ``hypervisor`` and ``network`` become None, which the orchestrator
  resolves to the manifest's or the daemon's default when it stores the
  result; ``manifest`` and ``plugin`` have no default and refuse ``null``;
* ``plugin`` cannot change and unknown keys are refused.

See docs/adr/0008-vm-config-versions.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from volant_core.errors import ValidationError
from volant_core.kernel_cmdline import check_user_cmdline
from volant_core.manifest import (
    ArtifactLocation,
    ArtifactRef,
    CloudInit,
    Devices,
    Expose,
    Initramfs,
    Manifest,
    Network,
    Port,
    RootFS,
)

__all__ = [
    "FIELD_GROUPS",
    "LIVE_FIELDS",
    "ApiEndpoint",
    "ApiPatch",
    "ConfigPatch",
    "CpuCores",
    "Expose",
    "KernelCmdline",
    "MemoryMB",
    "OnUnhealthy",
    "Resources",
    "ResourcesPatch",
    "RestartPolicyConfig",
    "RestartPolicyPatch",
    "VMConfig",
    "apply_patch",
    "needs_restart",
    "parse_patch",
    "validate_config",
]

#: Keys a patch merges field by field; every other key is replaced as a whole.
FIELD_GROUPS = frozenset({"resources", "api", "restart_policy"})
#: Keys whose changes take effect at once; changing any other key needs a restart.
LIVE_FIELDS = frozenset({"metadata", "restart_policy", "on_unhealthy"})


def _user_cmdline(value: str) -> str:
    """:func:`~volant_core.kernel_cmdline.check_user_cmdline`, its reason as the field's message."""
    try:
        return check_user_cmdline(value)
    except ValueError as err:
        raise PydanticCustomError("volant_invalid", "{reason}", {"reason": str(err)}) from None


CpuCores = Annotated[int, Field(ge=1, le=64)]
MemoryMB = Annotated[int, Field(ge=128, le=1024 * 1024)]
KernelCmdline = Annotated[str, Field(max_length=1024), AfterValidator(_user_cmdline)]
RestartMode = Literal["never", "on-failure"]
MaxRestarts = Annotated[int, Field(ge=0)]
BackoffSeconds = Annotated[float, Field(gt=0)]
#: What the supervisor does with a VM whose workload fails its health check while kestrel answers:
#: ``report`` it (the VM's ``health``), ``restart`` the VM or ``stop`` it (both powering off gracefully).
OnUnhealthy = Literal["report", "restart", "stop"]


class _Model(BaseModel):
    """Shared settings: strict JSON types, trimmed strings, no unknown keys, immutable."""

    model_config = ConfigDict(
        extra="forbid", strict=True, str_strip_whitespace=True, frozen=True, use_attribute_docstrings=True
    )


class Resources(_Model):
    """vCPUs and memory the VM boots with."""

    cpu_cores: CpuCores
    """Number of vCPUs."""
    memory_mb: MemoryMB
    """Guest memory in MiB."""


class ApiEndpoint(_Model):
    """Where the guest reaches the control plane (kept for Go compatibility)."""

    host: str | None = None
    """Host name or address."""
    port: Port | None = None
    """TCP port."""


#: Longest wait between two automatic restarts (seconds).
MAX_BACKOFF_S = 60.0


class RestartPolicyConfig(_Model):
    """What the supervisor does when the VM crashes on its own."""

    mode: RestartMode = "never"
    """``never``, or ``on-failure`` to restart a crashed VM."""
    max_restarts: MaxRestarts = 5
    """Most consecutive automatic restarts."""
    backoff_s: BackoffSeconds = 1.0
    """Wait before the first restart (seconds); it doubles with every attempt."""

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait before automatic restart number ``attempt`` (0-based), or None for none.

        ``max_restarts`` counts consecutive restarts: the supervisor starts counting
        again once a VM ran healthily for a while, or on an explicit start.
        """
        if self.mode != "on-failure" or attempt >= self.max_restarts:
            return None
        return min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)


class VMConfig(_Model):
    """One version of a VM's configuration (see the module documentation)."""

    plugin: Annotated[str, Field(min_length=1)]
    """Runtime manifest (plugin) the VM was created from; never changes."""
    runtime: Annotated[str, Field(min_length=1)]
    """Runtime of the VM; always the manifest's."""
    hypervisor: str | None = None
    """Hypervisor plugin; None until resolved to the daemon's default."""
    kernel_cmdline: KernelCmdline = ""
    """Extra kernel arguments appended to Volant's own."""
    kernel_override: ArtifactLocation | None = None
    """Kernel to boot instead of the base image's (URL or absolute path)."""
    resources: Resources
    """vCPUs and memory."""
    api: ApiEndpoint = ApiEndpoint()
    """Control-plane endpoint for the guest."""
    manifest: Manifest
    """Snapshot of the runtime manifest the VM boots."""
    devices: Devices | None = None
    """Passthrough devices, replacing the manifest's."""
    metadata: dict[str, Any] = {}
    """Free-form data for people and plugins."""
    expose: list[Expose] = []
    """Guest ports published on the host (a new VM gets its manifest's)."""
    cloud_init: CloudInit | None = None
    """cloud-init seed, merged with the manifest's per document (a document given here replaces the
    manifest's of the same name; see ``requirements.cloud_init_of``)."""
    network: Network | None = None
    """Network mode and settings; None until resolved to the manifest's or the daemon's default."""
    initramfs: Initramfs | None = None
    """Initramfs to boot instead of the manifest's boot medium."""
    rootfs: RootFS | None = None
    """Root filesystem to boot instead of the manifest's boot medium."""
    persistent_root: bool | None = None
    """Keep the root filesystem's changes across stop and start (true) or not (false), replacing
    the root filesystem's ``persistent``; None keeps it. Turning it off discards them at the next boot."""
    restart_policy: RestartPolicyConfig = RestartPolicyConfig()
    """Automatic restarts after a crash."""
    on_unhealthy: OnUnhealthy = "report"
    """What happens when the workload fails its health check: ``report``, ``restart`` or ``stop``."""

    @classmethod
    def from_manifest(cls, plugin: str, manifest: Manifest) -> VMConfig:
        """The configuration a new VM of ``manifest`` starts from: its runtime, resources and published
        ports, no overrides.
        """
        resources = {"cpu_cores": manifest.resources.cpu_cores, "memory_mb": manifest.resources.memory_mb}
        return validate_config(
            {
                "plugin": plugin,
                "runtime": manifest.runtime,
                "resources": resources,
                "manifest": manifest,
                "expose": manifest.expose,
            }
        )

    def to_json(self) -> dict[str, Any]:
        """The stored JSON document (keys without a value are left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def artifacts(self) -> list[ArtifactRef]:
        """The host files this configuration names: its overrides and its manifest's boot media."""
        found = self.manifest.artifacts("manifest.")
        if self.initramfs is not None:
            found.append(ArtifactRef("initramfs.url", self.initramfs.url, None, self.initramfs.checksum))
        if self.rootfs is not None:
            found.append(ArtifactRef("rootfs.url", self.rootfs.url, self.rootfs.format, self.rootfs.checksum))
        if self.kernel_override is not None:
            found.append(ArtifactRef("kernel_override", self.kernel_override))
        return found

    def boot_artifacts(self) -> list[ArtifactRef]:
        """The files a boot of this configuration fetches: its boot manifest's and the kernel override."""
        found = self.boot_manifest().artifacts("manifest.")
        if self.kernel_override is not None:
            found.append(ArtifactRef("kernel_override", self.kernel_override))
        return found

    def boot_manifest(self) -> Manifest:
        """The manifest the guest boots: the snapshot, with the ``initramfs`` or ``rootfs`` override
        in place of its own boot medium, and ``persistent_root`` in place of its root's ``persistent``.
        """
        if self.initramfs is not None:
            return self.manifest.model_copy(update={"initramfs": self.initramfs, "rootfs": None})
        manifest = self.manifest
        if self.rootfs is not None:
            manifest = manifest.model_copy(update={"rootfs": self.rootfs, "initramfs": None})
        if self.persistent_root is not None and manifest.rootfs is not None:
            rootfs = manifest.rootfs.model_copy(update={"persistent": self.persistent_root})
            manifest = manifest.model_copy(update={"rootfs": rootfs})
        return manifest


class ResourcesPatch(_Model):
    """``resources`` in a patch: only the named fields change."""

    cpu_cores: CpuCores | None = None
    """New vCPU count; null for the manifest's."""
    memory_mb: MemoryMB | None = None
    """New memory in MiB; null for the manifest's."""


class ApiPatch(_Model):
    """``api`` in a patch: only the named fields change."""

    host: str | None = None
    """New host; null clears it."""
    port: Port | None = None
    """New port; null clears it."""


class RestartPolicyPatch(_Model):
    """``restart_policy`` in a patch: only the named fields change; null restores a default."""

    mode: RestartMode | None = None
    """New mode."""
    max_restarts: MaxRestarts | None = None
    """New cap on consecutive restarts."""
    backoff_s: BackoffSeconds | None = None
    """New initial backoff (seconds)."""


class ConfigPatch(_Model):
    """``PATCH /api/v1/vms/{name}/config``: the keys to change; omitted keys keep their value."""

    plugin: str | None = None
    """Accepted only when equal to the VM's plugin (a VM keeps its plugin)."""
    runtime: str | None = None
    """New runtime; it must be the manifest's."""
    hypervisor: str | None = None
    """New hypervisor plugin; null for the daemon's default."""
    kernel_cmdline: KernelCmdline | None = None
    """New extra kernel arguments; null or "" for none."""
    kernel_override: ArtifactLocation | None = None
    """New kernel; null for the base image's."""
    resources: ResourcesPatch | None = None
    """vCPUs and memory, field by field; null for the manifest's."""
    api: ApiPatch | None = None
    """Control-plane endpoint, field by field; null clears it."""
    manifest: Manifest | None = None
    """A whole new manifest snapshot."""
    devices: Devices | None = None
    """New passthrough devices; null for the manifest's."""
    metadata: dict[str, Any] | None = None
    """New metadata, replacing all of it; null clears it."""
    expose: list[Expose] | None = None
    """New published ports, replacing all of them; [] clears them, null restores the manifest's."""
    cloud_init: CloudInit | None = None
    """New cloud-init override (replacing the VM's previous one whole); null for the manifest's."""
    network: Network | None = None
    """New network settings; null for the manifest's or the daemon's default."""
    initramfs: Initramfs | None = None
    """New initramfs override; null for the manifest's boot medium."""
    rootfs: RootFS | None = None
    """New root filesystem override; null for the manifest's boot medium."""
    persistent_root: bool | None = None
    """Keep the root filesystem's changes across stop and start, or not; null for the root
    filesystem's own ``persistent``."""
    restart_policy: RestartPolicyPatch | None = None
    """Restart policy, field by field; null for the default policy."""
    on_unhealthy: OnUnhealthy | None = None
    """New policy for an unhealthy workload; null for the default, ``report``."""


def validate_config(data: Mapping[str, Any]) -> VMConfig:
    """Validate a configuration document; :class:`ValidationError` naming the first bad field."""
    try:
        config = VMConfig.model_validate(dict(data))
    except pydantic.ValidationError as err:
        raise ValidationError.from_pydantic(err) from None
    if config.runtime != config.manifest.runtime:
        raise ValidationError(
            f"runtime: {config.runtime!r} is not the manifest's runtime {config.manifest.runtime!r}; "
            "omit it, set it to null or to the manifest's runtime",
            field="runtime",
        )
    if config.initramfs is not None and config.rootfs is not None:
        raise ValidationError(
            "initramfs: the initramfs and rootfs overrides are mutually exclusive; set one of them to null",
            field="initramfs",
        )
    if config.persistent_root is not None and config.boot_manifest().rootfs is None:
        raise ValidationError(
            "persistent_root: the VM boots no root filesystem (neither its manifest nor a rootfs "
            "override names one); give a rootfs, or set persistent_root to null",
            field="persistent_root",
        )
    return config


def parse_patch(data: Any) -> ConfigPatch:
    """Validate a patch document (a JSON object); :class:`ValidationError` naming the first bad field."""
    try:
        return ConfigPatch.model_validate(data)
    except pydantic.ValidationError as err:
        raise ValidationError.from_pydantic(err) from None


def apply_patch(current: VMConfig, patch: ConfigPatch) -> VMConfig:
    """The configuration ``patch`` makes of ``current``, validated (see the module documentation).

    A patch that names nothing (a create without overrides) is ``current`` itself, which every
    caller has validated already: not merged and validated again (issue 11).
    """
    given = patch.model_fields_set
    if not given:
        return current
    if "plugin" in given and patch.plugin != current.plugin:
        raise ValidationError(
            f"plugin: a VM keeps the plugin it was created from ({current.plugin!r}); "
            "create a new VM to use another",
            field="plugin",
        )
    if "manifest" in given and patch.manifest is None:
        raise ValidationError(
            "manifest: cannot be null; a VM always has a manifest (send a whole one to replace it)",
            field="manifest",
        )
    if patch.manifest is not None and patch.manifest.name != current.plugin:
        raise ValidationError(
            f"manifest.name: {patch.manifest.name!r} is not this VM's runtime plugin {current.plugin!r}; "
            "a new manifest replaces the plugin's own (install another plugin and create a VM of it "
            "to run another)",
            field="manifest.name",
        )
    defaults = VMConfig.from_manifest(current.plugin, patch.manifest or current.manifest)
    merged: dict[str, Any] = {}
    for key in VMConfig.model_fields:
        if key not in given or key == "plugin":
            merged[key] = getattr(current, key)
        elif key in FIELD_GROUPS:
            merged[key] = _merge_fields(getattr(current, key), getattr(patch, key), getattr(defaults, key))
        else:
            value = getattr(patch, key)
            merged[key] = getattr(defaults, key) if value is None else value
    return validate_config(merged)


G = TypeVar("G", bound=BaseModel)


def _merge_fields(current: G, patch: BaseModel | None, default: G) -> G:
    """``current`` with the fields ``patch`` names; null (a field or the whole patch) means ``default``'s."""
    if patch is None:
        return default
    changes = {}
    for name in patch.model_fields_set:
        value = getattr(patch, name)
        changes[name] = getattr(default, name) if value is None else value
    return current.model_copy(update=changes)


def needs_restart(applied: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether the ``current`` document differs from the ``applied`` one (the one the VMM booted)
    in a key read only at boot (any key but :data:`LIVE_FIELDS`).
    """
    keys = (set(applied) | set(current)) - LIVE_FIELDS
    return any(applied.get(key) != current.get(key) for key in keys)
