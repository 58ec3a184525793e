"""What a caller asks the orchestrator for when it creates a VM (the API's POST body, too)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from volant_core.errors import ValidationError
from volant_core.manifest import PluginName
from volant_core.orchestrator.vmconfig import ConfigPatch, CpuCores, KernelCmdline, MemoryMB, parse_patch
from volant_core.vm import NAME_RULE, name_problem


class CreateVMRequest(BaseModel):
    """``POST /api/v1/vms``: boot a VM from an installed runtime manifest.

    ``cpu_cores`` and ``memory_mb`` default to the manifest's ``resources``.
    ``kernel_cmdline`` holds extra kernel arguments appended to Volant's own.
    ``config`` is a partial VM configuration (the keys of ``PATCH .../config``)
    whose values override the top-level fields, as in Go; it may name the
    plugin instead of ``plugin``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"VM name: {NAME_RULE}", examples=["web-1"])
    plugin: str | None = Field(
        default=None,
        min_length=1,
        description="Runtime manifest (plugin) to boot; required unless config.plugin names it",
        examples=["hello-http"],
    )
    runtime: str | None = Field(default=None, description="Must equal the manifest's runtime when given")
    cpu_cores: CpuCores | None = None
    memory_mb: MemoryMB | None = None
    kernel_cmdline: KernelCmdline | None = None
    hypervisor: str | None = Field(default=None, description="Hypervisor plugin; the daemon default if unset")
    network_mode: PluginName | None = Field(
        default=None, description="Network mode; the manifest's or the default"
    )
    config: ConfigPatch | None = Field(default=None, description="Configuration overriding the fields above")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if problem := name_problem(value):
            raise ValueError(problem)
        return value

    def runtime_name(self) -> str:
        """The plugin to boot: ``plugin`` or ``config.plugin``, which must agree when both are given."""
        named = self.config.plugin if self.config is not None else None
        if self.plugin is None and named is None:
            raise ValidationError(
                "plugin: required; name the runtime manifest (plugin) to boot", field="plugin"
            )
        if self.plugin is not None and named is not None and named != self.plugin:
            raise ValidationError(
                f"config.plugin: {named!r} differs from plugin {self.plugin!r}; "
                "give one of them, or the same name in both",
                field="config.plugin",
            )
        return self.plugin or str(named)

    def overrides(self) -> ConfigPatch:
        """The top-level fields that were given, as a patch over the manifest's defaults."""
        data: dict[str, Any] = {}
        for key in ("runtime", "hypervisor", "kernel_cmdline"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        resources = {k: getattr(self, k) for k in ("cpu_cores", "memory_mb") if getattr(self, k) is not None}
        if resources:
            data["resources"] = resources
        if self.network_mode:
            data["network"] = {"mode": self.network_mode}
        return parse_patch(data)
