"""Request bodies of the API as pydantic models (the OpenAPI schemas come from these)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from volant_core.vm import NAME_RULE, name_problem


class CreateVMRequest(BaseModel):
    """``POST /api/v1/vms``: boot a VM from an installed runtime manifest.

    ``cpu_cores`` and ``memory_mb`` default to the manifest's ``resources``.
    ``kernel_cmdline`` holds extra kernel arguments appended to Volant's own.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description=f"VM name: {NAME_RULE}", examples=["web-1"])
    plugin: str = Field(
        min_length=1, description="Runtime manifest (plugin) to boot", examples=["hello-http"]
    )
    runtime: str | None = Field(default=None, description="Must equal the manifest's runtime when given")
    cpu_cores: int | None = Field(default=None, ge=1, le=64)
    memory_mb: int | None = Field(default=None, ge=128, le=1024 * 1024)
    kernel_cmdline: str | None = Field(default=None, max_length=1024)
    hypervisor: str | None = Field(default=None, description="Hypervisor plugin; the daemon default if unset")
    network_mode: str | None = Field(default=None, description="Network mode; the manifest's or the default")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if problem := name_problem(value):
            raise ValueError(problem)
        return value


class SetEnabledRequest(BaseModel):
    """``POST /api/v1/plugins/{plugin}/enabled``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool
